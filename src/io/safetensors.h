// safetensors reader (memory-mapped, validated) and writer.
// Format: u64 little-endian header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {...}},
// then the data buffer; offsets are relative to the buffer start.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/mmap.h"

namespace bwla {

enum class DType { F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, BOOL };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
// Throws for an unknown dtype string (message names the context).
DType parse_dtype(const std::string& s, const std::string& context);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // source file, for error messages

  int64_t numel() const;
  std::string shape_str() const;
  // Converts F32/F16/BF16/F64 to fp32 into out (numel() floats); a value that
  // is not finite is an error naming the tensor and the index.
  void to_f32(float* out) const;
  std::vector<float> to_f32() const;

 private:
  void convert_f32(float* out, int64_t n) const;
};

// A parsed, validated safetensors header: every tensor's bytes lie inside
// [data, data + size), ranges do not overlap, sizes match dtype × shape.
struct SafeTensorsIndex {
  std::map<std::string, TensorView> tensors;
  std::map<std::string, std::string> metadata;
};
// Parses the whole file image `data` (size bytes); `path` names it in errors.
// Throws bwla::Error for anything malformed; never reads outside the buffer.
// (The libFuzzer target fuzz/fuzz_safetensors.cc drives this function.)
SafeTensorsIndex parse_safetensors(const uint8_t* data, size_t size, const std::string& path);

class SafeTensorsFile {
 public:
  explicit SafeTensorsFile(const std::string& path);
  const std::string& path() const { return file_.path(); }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws naming the file when absent.
  const TensorView& get(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Drops a tensor's pages from the resident set (see MappedFile::release).
  void release(const std::string& name) const;

 private:
  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors to write; data is copied in.
class SafeTensorsWriter {
 public:
  // alignment: every tensor's data starts at a multiple of this many bytes from
  // the file start (padding is expressed as "__pad<k>" U8 tensors so the buffer
  // has no holes, as the format requires).
  explicit SafeTensorsWriter(size_t alignment = 64) : align_(alignment) {}
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
           size_t nbytes);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  // Non-owning: data must stay valid until write() returns (e.g. an mmap).
  // after_write (optional) runs once the bytes are written, e.g. to release
  // the mapped pages so that assembling a large file keeps the RSS small.
  void add_view(const std::string& name, DType dtype, std::vector<int64_t> shape,
                const void* data, size_t nbytes, std::function<void()> after_write = {});
  // Converts fp32 to the given float dtype (F32, F16, BF16).
  void add_from_f32(const std::string& name, DType dtype, std::vector<int64_t> shape,
                    const float* data);
  void set_metadata(const std::string& k, const std::string& v) { metadata_[k] = v; }
  // Writes to path atomically (path.tmp then rename).
  void write(const std::string& path) const;
  size_t num_tensors() const { return entries_.size(); }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
    const uint8_t* view = nullptr;
    size_t view_n = 0;
    std::function<void()> after_write;
    size_t size() const { return view ? view_n : bytes.size(); }
    const uint8_t* ptr() const { return view ? view : bytes.data(); }
  };
  size_t align_;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a Hugging Face model directory: model.safetensors, or the
// shards listed in model.safetensors.index.json.
class TensorStore {
 public:
  explicit TensorStore(const std::string& dir);
  // An alias (see add_alias) counts as present; get() returns its target.
  bool has(const std::string& name) const {
    return where_.count(name) != 0 || alias_.count(name) != 0;
  }
  const TensorView& get(const std::string& name) const;
  // Makes `name` read `target` (a tensor of the store). The safetensors
  // `__metadata__` convention of tied weights saved once ({"name": "target"},
  // as transformers writes it) is applied by the constructor.
  void add_alias(const std::string& name, const std::string& target);
  std::vector<std::string> names() const;
  const std::string& dir() const { return dir_; }
  // dtype of the first floating tensor (for `info`).
  std::string main_dtype() const;
  size_t total_bytes() const;
  // Drops a tensor's mapped pages from the resident set (after converting it).
  void release(const std::string& name) const;
  // Tensors no get() has asked for yet, in name order: after a whole model is
  // loaded, weights its config does not account for (a checkpoint and a
  // config that disagree, or a tensor whose name was corrupted).
  std::vector<std::string> unused() const;
  // Counts `name` as used without reading it (an alias checked elsewhere).
  void mark_used(const std::string& name) const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafeTensorsFile>> files_;
  std::map<std::string, const SafeTensorsFile*> where_;
  std::map<std::string, std::string> alias_;  // name -> stored tensor
  // One flag per tensor, created with where_ and only flipped afterwards, so
  // get() may run on several threads at once.
  mutable std::map<std::string, std::atomic<bool>> used_;
};

}  // namespace bwla
