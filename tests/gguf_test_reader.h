// Minimal independent GGUF v3 reader for tests (written from the format
// description, not from bwla's writer): parses the header, metadata and
// tensor infos of a file and gives access to tensor bytes.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gguf_test {

struct Value {
  uint32_t type = 0;       // GGUF value type
  uint32_t elem_type = 0;  // for arrays
  uint64_t u = 0;          // unsigned ints, bool
  int64_t i = 0;           // signed ints
  double f = 0;            // floats
  std::string s;
  std::vector<std::string> strs;
  std::vector<double> nums;  // numeric array elements
};

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // ggml order
  uint32_t type = 0;
  uint64_t offset = 0;
};

struct File {
  uint32_t magic = 0, version = 0;
  std::map<std::string, Value> kv;
  std::vector<std::string> kv_order;
  std::vector<TensorInfo> tensors;
  uint64_t data_start = 0;
  uint32_t alignment = 32;
  std::vector<uint8_t> bytes;

  const uint8_t* tensor_data(const TensorInfo& t) const { return bytes.data() + data_start + t.offset; }
};

class Cursor {
 public:
  explicit Cursor(const std::vector<uint8_t>& b) : b_(b) {}
  template <typename T>
  T get() {
    if (pos_ + sizeof(T) > b_.size()) throw std::runtime_error("gguf_test: truncated");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    uint64_t n = get<uint64_t>();
    if (pos_ + n > b_.size()) throw std::runtime_error("gguf_test: string past end");
    std::string s((const char*)b_.data() + pos_, n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }

 private:
  const std::vector<uint8_t>& b_;
  size_t pos_ = 0;
};

inline double read_scalar(Cursor& c, uint32_t t, Value* v) {
  switch (t) {
    case 0: { auto x = c.get<uint8_t>(); if (v) v->u = x; return x; }
    case 1: { auto x = c.get<int8_t>(); if (v) v->i = x; return x; }
    case 2: { auto x = c.get<uint16_t>(); if (v) v->u = x; return x; }
    case 3: { auto x = c.get<int16_t>(); if (v) v->i = x; return x; }
    case 4: { auto x = c.get<uint32_t>(); if (v) v->u = x; return x; }
    case 5: { auto x = c.get<int32_t>(); if (v) v->i = x; return x; }
    case 6: { auto x = c.get<float>(); if (v) v->f = x; return x; }
    case 7: {
      auto x = c.get<uint8_t>();
      if (x > 1) throw std::runtime_error("gguf_test: bad bool");
      if (v) v->u = x;
      return x;
    }
    case 10: { auto x = c.get<uint64_t>(); if (v) v->u = x; return (double)x; }
    case 11: { auto x = c.get<int64_t>(); if (v) v->i = x; return (double)x; }
    case 12: { auto x = c.get<double>(); if (v) v->f = x; return x; }
  }
  throw std::runtime_error("gguf_test: bad scalar type " + std::to_string(t));
}

inline File read(const std::string& path) {
  File f;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("gguf_test: cannot open " + path);
  f.bytes.assign(std::istreambuf_iterator<char>(in), {});
  Cursor c(f.bytes);
  f.magic = c.get<uint32_t>();
  f.version = c.get<uint32_t>();
  uint64_t n_tensors = c.get<uint64_t>(), n_kv = c.get<uint64_t>();
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.str();
    Value v;
    v.type = c.get<uint32_t>();
    if (v.type == 8) {
      v.s = c.str();
    } else if (v.type == 9) {
      v.elem_type = c.get<uint32_t>();
      uint64_t n = c.get<uint64_t>();
      for (uint64_t e = 0; e < n; ++e) {
        if (v.elem_type == 8) v.strs.push_back(c.str());
        else v.nums.push_back(read_scalar(c, v.elem_type, nullptr));
      }
    } else {
      read_scalar(c, v.type, &v);
    }
    if (f.kv.count(key)) throw std::runtime_error("gguf_test: duplicate key " + key);
    f.kv_order.push_back(key);
    f.kv[key] = v;
  }
  if (f.kv.count("general.alignment")) f.alignment = (uint32_t)f.kv["general.alignment"].u;
  for (uint64_t t = 0; t < n_tensors; ++t) {
    TensorInfo ti;
    ti.name = c.str();
    uint32_t nd = c.get<uint32_t>();
    for (uint32_t d = 0; d < nd; ++d) ti.ne.push_back(c.get<uint64_t>());
    ti.type = c.get<uint32_t>();
    ti.offset = c.get<uint64_t>();
    f.tensors.push_back(ti);
  }
  f.data_start = (c.pos() + f.alignment - 1) / f.alignment * f.alignment;
  return f;
}

inline uint64_t numel(const TensorInfo& t) {
  uint64_t n = 1;
  for (auto d : t.ne) n *= d;
  return n;
}

}  // namespace gguf_test
