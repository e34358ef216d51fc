// GGUF v3 writer (the llama.cpp / ggml model file format).
//
// Layout (all little-endian):
//   u32 magic "GGUF", u32 version (3), u64 tensor_count, u64 kv_count,
//   kv_count × { string key, u32 value_type, value },
//   tensor_count × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
//   zero padding to `general.alignment` (default 32), then the tensor data; each
//   tensor's offset is relative to the data start and a multiple of the alignment.
// A string is u64 length + bytes (no terminator); an array is u32 element type,
// u64 count, elements. ne[] is in ggml order: ne[0] is the contiguous (innermost)
// dimension, so a row-major [rows, cols] matrix has ne = {cols, rows}.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

namespace bwla {

enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

// Tensor data types this writer produces (ggml_type numbers).
enum class GgmlType : uint32_t { F32 = 0, F16 = 1 };

inline constexpr uint32_t kGgufMagic = 0x46554747u;  // "GGUF" read as a LE u32
inline constexpr uint32_t kGgufVersion = 3;

// "f32"/"f16" (case-insensitive) -> type; anything else throws naming context.
GgmlType parse_ggml_type(const std::string& s, const std::string& context);
const char* ggml_type_name(GgmlType t);
size_t ggml_type_size(GgmlType t);

// Metadata key bwla writes first in every GGUF it exports, so a later export
// recognises (and may replace) its own file and refuses anyone else's.
inline constexpr const char* kGgufWriterKey = "bwla.writer";
// True if `path` is a GGUF whose first metadata key is kGgufWriterKey.
bool gguf_written_by_bwla(const std::string& path);

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32);

  // Metadata. Keys must be unique (a repeated key throws naming it).
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);

  // A tensor whose fp32 values are produced on demand at write() time (so a
  // large checkpoint is converted one tensor at a time). shape is row-major
  // (outermost first, as in safetensors); it is stored reversed (ggml ne order).
  // fill(out) must write numel floats; they are stored as `type`.
  using Fill = std::function<void(float* out)>;
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> shape, Fill fill);
  // Convenience: data copied in now.
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> shape,
                  const float* data);

  // Writes the file (a temporary beside it, then rename). Errors name the path.
  void write(const std::string& path) const;

  size_t num_tensors() const { return tensors_.size(); }
  size_t num_kv() const { return kv_.size(); }
  uint32_t alignment() const { return align_; }

 private:
  struct KV {
    std::string key;
    GgufValueType type;
    GgufValueType elem = GgufValueType::U8;  // arrays
    std::vector<uint8_t> payload;            // encoded value (after the type field)
  };
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> shape;
    Fill fill;
    uint64_t numel() const;
    uint64_t nbytes() const { return numel() * ggml_type_size(type); }
  };
  KV& new_kv(const std::string& key, GgufValueType t);
  // An array of fixed-size elements, stored as their little-endian bytes.
  template <class T>
  void set_array(const std::string& key, GgufValueType elem, const std::vector<T>& v);
  uint32_t align_;
  std::vector<KV> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace bwla
