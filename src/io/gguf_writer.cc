#include "io/gguf_writer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <type_traits>

#include "core/error.h"
#include "core/half.h"
#include "io/output_path.h"

namespace bwla {

namespace {

void put_bytes(std::vector<uint8_t>& b, const void* p, size_t n) {
  auto* c = static_cast<const uint8_t*>(p);
  b.insert(b.end(), c, c + n);
}
template <typename T>
void put(std::vector<uint8_t>& b, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  put_bytes(b, &v, sizeof(T));  // x86-64 / aarch64-le: host order is little-endian
}
void put_string(std::vector<uint8_t>& b, const std::string& s) {
  put<uint64_t>(b, s.size());
  put_bytes(b, s.data(), s.size());
}

uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

class File {
 public:
  File(const std::string& path) : path_(path) {
    f_ = std::fopen(path.c_str(), "wb");
    if (!f_) fail("{}: cannot open for writing: {}", path, std::strerror(errno));
  }
  ~File() {
    if (f_) std::fclose(f_);
  }
  void write(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n)
      fail("{}: write failed: {}", path_, std::strerror(errno));
  }
  void zeros(size_t n) {
    static const uint8_t z[64] = {};
    while (n) {
      size_t k = std::min(n, sizeof z);
      write(z, k);
      n -= k;
    }
  }
  void close() {
    if (std::fclose(f_) != 0) {
      f_ = nullptr;
      fail("{}: close failed: {}", path_, std::strerror(errno));
    }
    f_ = nullptr;
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace

GgmlType parse_ggml_type(const std::string& s, const std::string& context) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "f32") return GgmlType::F32;
  if (l == "f16") return GgmlType::F16;
  fail("{}: unsupported GGUF tensor dtype '{}' (supported: f32, f16)", context, s);
}

const char* ggml_type_name(GgmlType t) { return t == GgmlType::F32 ? "F32" : "F16"; }
size_t ggml_type_size(GgmlType t) { return t == GgmlType::F32 ? 4 : 2; }

GgufWriter::GgufWriter(uint32_t alignment) : align_(alignment) {
  BWLA_CHECK(alignment > 0 && alignment % 8 == 0 && alignment <= 4096,
             "GGUF alignment {} must be a positive multiple of 8 (at most 4096)", alignment);
  if (alignment != 32) set_u32("general.alignment", alignment);
}

bool gguf_written_by_bwla(const std::string& path) {
  // magic, version u32, tensor count u64, kv count u64, then the first key (u64 length + bytes).
  const std::string key = kGgufWriterKey;
  std::vector<char> head(4 + 4 + 8 + 8 + 8 + key.size());
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  const bool full = std::fread(head.data(), 1, head.size(), f) == head.size();
  std::fclose(f);
  if (!full || std::memcmp(head.data(), "GGUF", 4) != 0) return false;
  uint64_t len;
  std::memcpy(&len, head.data() + 24, 8);
  return len == key.size() && std::memcmp(head.data() + 32, key.data(), key.size()) == 0;
}

GgufWriter::KV& GgufWriter::new_kv(const std::string& key, GgufValueType t) {
  BWLA_CHECK(!key.empty(), "GGUF metadata key is empty");
  for (auto& k : kv_) BWLA_CHECK(k.key != key, "GGUF metadata key '{}' set twice", key);
  kv_.push_back({key, t, GgufValueType::U8, {}});
  return kv_.back();
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  put(new_kv(key, GgufValueType::U32).payload, v);
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
  put(new_kv(key, GgufValueType::I32).payload, v);
}
void GgufWriter::set_u64(const std::string& key, uint64_t v) {
  put(new_kv(key, GgufValueType::U64).payload, v);
}
void GgufWriter::set_f32(const std::string& key, float v) {
  put(new_kv(key, GgufValueType::F32).payload, v);
}
void GgufWriter::set_bool(const std::string& key, bool v) {
  put<uint8_t>(new_kv(key, GgufValueType::BOOL).payload, v ? 1 : 0);
}
void GgufWriter::set_string(const std::string& key, const std::string& v) {
  put_string(new_kv(key, GgufValueType::STRING).payload, v);
}
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  auto& kv = new_kv(key, GgufValueType::ARRAY);
  kv.elem = GgufValueType::STRING;
  put<uint32_t>(kv.payload, (uint32_t)GgufValueType::STRING);
  put<uint64_t>(kv.payload, v.size());
  for (auto& s : v) put_string(kv.payload, s);
}
template <class T>
void GgufWriter::set_array(const std::string& key, GgufValueType elem, const std::vector<T>& v) {
  auto& kv = new_kv(key, GgufValueType::ARRAY);
  kv.elem = elem;
  put<uint32_t>(kv.payload, (uint32_t)elem);
  put<uint64_t>(kv.payload, v.size());
  put_bytes(kv.payload, v.data(), v.size() * sizeof(T));
}
void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  set_array(key, GgufValueType::F32, v);
}
void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  set_array(key, GgufValueType::I32, v);
}

uint64_t GgufWriter::Tensor::numel() const {
  uint64_t n = 1;
  for (auto d : shape) n *= (uint64_t)d;
  return n;
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> shape,
                            Fill fill) {
  BWLA_CHECK(!name.empty(), "GGUF tensor name is empty");
  BWLA_CHECK(name.size() < 64, "GGUF tensor name '{}' is {} bytes (ggml allows at most 63)", name,
             name.size());
  BWLA_CHECK(!shape.empty() && shape.size() <= 4,
             "GGUF tensor '{}': {} dimensions (1 to 4 supported)", name, shape.size());
  for (auto d : shape)
    BWLA_CHECK(d > 0, "GGUF tensor '{}': non-positive dimension in [{}]", name,
               fmt::join(shape, ", "));
  for (auto& t : tensors_) BWLA_CHECK(t.name != name, "GGUF tensor '{}' added twice", name);
  BWLA_CHECK(fill != nullptr, "GGUF tensor '{}': no data", name);
  tensors_.push_back({name, type, std::move(shape), std::move(fill)});
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> shape,
                            const float* data) {
  uint64_t n = 1;
  for (auto d : shape) n *= (uint64_t)std::max<int64_t>(d, 0);
  auto copy = std::make_shared<std::vector<float>>(data, data + n);
  add_tensor(name, type, std::move(shape),
             [copy](float* out) { std::memcpy(out, copy->data(), copy->size() * sizeof(float)); });
}

void GgufWriter::write(const std::string& path) const {
  // Header + KV + tensor infos.
  std::vector<uint8_t> head;
  put<uint32_t>(head, kGgufMagic);
  put<uint32_t>(head, kGgufVersion);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_.size());
  for (auto& kv : kv_) {
    put_string(head, kv.key);
    put<uint32_t>(head, (uint32_t)kv.type);
    put_bytes(head, kv.payload.data(), kv.payload.size());
  }
  std::vector<uint64_t> offsets;
  uint64_t off = 0;
  for (auto& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, (uint32_t)t.shape.size());
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(head, (uint64_t)*it);
    put<uint32_t>(head, (uint32_t)t.type);
    put<uint64_t>(head, off);
    offsets.push_back(off);
    off = round_up(off + t.nbytes(), align_);
  }

  const std::string tmp = temp_sibling(path);
  try {
    File f(tmp);
    f.write(head.data(), head.size());
    f.zeros(round_up(head.size(), align_) - head.size());
    uint64_t pos = 0;
    std::vector<float> buf;
    std::vector<uint16_t> half;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      auto& t = tensors_[i];
      f.zeros(offsets[i] - pos);
      pos = offsets[i];
      buf.assign(t.numel(), 0.f);
      t.fill(buf.data());
      if (t.type == GgmlType::F32) {
        f.write(buf.data(), buf.size() * sizeof(float));
      } else {
        half.resize(buf.size());
        for (size_t k = 0; k < buf.size(); ++k) half[k] = f32_to_f16(buf[k]);
        f.write(half.data(), half.size() * sizeof(uint16_t));
      }
      pos += t.nbytes();
    }
    f.zeros(round_up(pos, align_) - pos);
    f.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail("{}: cannot rename temporary file into place", path);
  }
}

}  // namespace bwla
