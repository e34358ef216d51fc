#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/half.h"
#include "io/json.h"
#include "io/output_path.h"

namespace bwla {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::I16: return "I16";
    case DType::U16: return "U16";
    case DType::I32: return "I32";
    case DType::U32: return "U32";
    case DType::I64: return "I64";
    case DType::U64: return "U64";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

DType parse_dtype(const std::string& s, const std::string& context) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
      {"I8", DType::I8},   {"U8", DType::U8},   {"I16", DType::I16},   {"U16", DType::U16},
      {"I32", DType::I32}, {"U32", DType::U32}, {"I64", DType::I64},   {"U64", DType::U64},
      {"BOOL", DType::BOOL}};
  for (auto& [n, t] : table)
    if (s == n) return t;
  fail("{}: unsupported dtype '{}'", context, s);
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string TensorView::shape_str() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

namespace {
// Index of the first value that is not finite (NaN or ±inf), or -1. The
// first pass only ORs flags, so it vectorizes; the second finds the index.
int64_t first_non_finite(const float* v, int64_t n) {
  const uint32_t* u = reinterpret_cast<const uint32_t*>(v);
  uint32_t any = 0;
  for (int64_t i = 0; i < n; ++i) any |= (u[i] & 0x7f800000u) == 0x7f800000u;
  if (!any) return -1;
  for (int64_t i = 0; i < n; ++i)
    if ((u[i] & 0x7f800000u) == 0x7f800000u) return i;
  return -1;
}
}  // namespace

void TensorView::to_f32(float* out) const {
  const int64_t n = numel();
  convert_f32(out, n);
  const int64_t bad = first_non_finite(out, n);
  if (bad >= 0)
    fail("'{}': tensor '{}' holds a non-finite value ({}) at flat index {}", file, name, out[bad], bad);
}

namespace {
// out[i] = f(element i of type T), read with memcpy (the mapping promises no
// alignment).
template <class T, class F>
void convert_each(const uint8_t* data, int64_t n, float* out, F f) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, data + sizeof(T) * i, sizeof(T));
    out[i] = f(v);
  }
}
}  // namespace

void TensorView::convert_f32(float* out, int64_t n) const {
  switch (dtype) {
    case DType::F32:
      std::memcpy(out, data, (size_t)n * 4);
      return;
    case DType::F16:
      return convert_each<uint16_t>(data, n, out, f16_to_f32);
    case DType::BF16:
      return convert_each<uint16_t>(data, n, out, bf16_to_f32);
    case DType::F64:
      return convert_each<double>(data, n, out, [](double d) { return (float)d; });
    default:
      fail("'{}': tensor '{}' has dtype {}, expected a floating type (F32, F16, BF16)", file, name,
           dtype_name(dtype));
  }
}


std::vector<float> TensorView::to_f32() const {
  std::vector<float> v((size_t)numel());
  to_f32(v.data());
  return v;
}

SafeTensorsIndex parse_safetensors(const uint8_t* data, size_t fsize, const std::string& path) {
  SafeTensorsIndex idx;
  BWLA_CHECK(fsize >= 8, "'{}': file too small for a safetensors header ({} bytes)", path, fsize);
  uint64_t hlen;
  std::memcpy(&hlen, data, 8);
  BWLA_CHECK(hlen <= fsize - 8, "'{}': header length {} exceeds file size {}", path, hlen, fsize);
  BWLA_CHECK(hlen <= (100u << 20), "'{}': header length {} is implausibly large", path, hlen);
  // Errors name the file; a tensor name given twice is refused there too.
  json header = parse_json_text((const char*)data + 8, (const char*)data + 8 + hlen,
                                path + " (header)");
  BWLA_CHECK(header.is_object(), "'{}': header is not a JSON object", path);
  const size_t data_start = 8 + hlen;
  const size_t buf_size = fsize - data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (it->is_object())
        for (auto m = it->begin(); m != it->end(); ++m)
          if (m->is_string()) idx.metadata[m.key()] = m->get<std::string>();
      continue;
    }
    const json& e = *it;
    BWLA_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") &&
                   e.contains("data_offsets"),
               "'{}': tensor '{}' header entry lacks dtype/shape/data_offsets", path, name);
    TensorView v;
    v.name = name;
    v.file = path;
    BWLA_CHECK(e["dtype"].is_string(), "'{}': tensor '{}' dtype is not a string", path, name);
    v.dtype = parse_dtype(e["dtype"].get<std::string>(), fmt::format("'{}' tensor '{}'", path, name));
    BWLA_CHECK(e["shape"].is_array(), "'{}': tensor '{}' shape is not an array", path, name);
    for (auto& d : e["shape"]) {
      BWLA_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0,
                 "'{}': tensor '{}' has a bad dimension {}", path, name, d.dump());
      v.shape.push_back(d.get<int64_t>());
    }
    const json& off = e["data_offsets"];
    BWLA_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                   off[1].is_number_unsigned(),
               "'{}': tensor '{}' data_offsets must be two non-negative integers", path, name);
    uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    BWLA_CHECK(b <= en, "'{}': tensor '{}' data_offsets [{}, {}] are reversed", path, name, b, en);
    BWLA_CHECK(en <= buf_size,
               "'{}': tensor '{}' data_offsets [{}, {}] run past the end of the data ({} bytes)",
               path, name, b, en, buf_size);
    // numel * size with overflow guard
    // numel * size, saturating once it exceeds the buffer (no overflow for any shape).
    unsigned __int128 expect = dtype_size(v.dtype);
    bool zero = false;
    for (auto d : v.shape) zero |= d == 0;
    for (auto d : v.shape) {
      if (zero) { expect = 0; break; }
      expect *= (uint64_t)d;
      if (expect > (unsigned __int128)buf_size + 1) { expect = (unsigned __int128)buf_size + 1; }
    }
    BWLA_CHECK(expect == (unsigned __int128)(en - b),
               "'{}': tensor '{}' {} {} needs {} bytes but data_offsets give {}", path, name,
               dtype_name(v.dtype), v.shape_str(), (long long)expect, en - b);
    v.data = data + data_start + b;
    v.nbytes = en - b;
    if (en > b) ranges.push_back({b, en});
    idx.tensors.emplace(name, std::move(v));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    BWLA_CHECK(ranges[i].first >= ranges[i - 1].second,
               "'{}': tensor data ranges overlap at byte {} (ranges [{}, {}] and [{}, {}])", path,
               ranges[i].first, ranges[i - 1].first, ranges[i - 1].second, ranges[i].first,
               ranges[i].second);
  return idx;
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) : file_(path) {
  SafeTensorsIndex idx = parse_safetensors(file_.data(), file_.size(), path);
  tensors_ = std::move(idx.tensors);
  metadata_ = std::move(idx.metadata);
}

const TensorView& SafeTensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("'{}': missing tensor '{}'", path(), name);
  return it->second;
}

std::vector<std::string> SafeTensorsFile::names() const {
  std::vector<std::string> out;
  for (auto& [k, v] : tensors_)
    if (k.rfind("__pad", 0) != 0) out.push_back(k);
  return out;
}


void SafeTensorsWriter::add_view(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                 const void* data, size_t nbytes,
                                 std::function<void()> after_write) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  BWLA_ASSERT((size_t)n * dtype_size(dtype) == nbytes, "tensor {} size mismatch {} vs {}", name,
              (size_t)n * dtype_size(dtype), nbytes);
  Entry e;
  e.name = name;
  e.dtype = dtype;
  e.shape = std::move(shape);
  e.view = (const uint8_t*)data;
  e.view_n = nbytes;
  e.after_write = std::move(after_write);
  entries_.push_back(std::move(e));
}

void SafeTensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            const void* data, size_t nbytes) {
  // Validate and record as a view, then take a copy the entry owns.
  add_view(name, dtype, std::move(shape), data, nbytes);
  Entry& e = entries_.back();
  e.bytes.assign(e.view, e.view + nbytes);
  e.view = nullptr;
  e.view_n = 0;
}

void SafeTensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape,
                                const float* data) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  add(name, DType::F32, std::move(shape), data, (size_t)n * 4);
}

void SafeTensorsWriter::add_from_f32(const std::string& name, DType dtype,
                                     std::vector<int64_t> shape, const float* data) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (dtype == DType::F32) return add_f32(name, std::move(shape), data);
  std::vector<uint16_t> h((size_t)n);
  for (int64_t i = 0; i < n; ++i)
    h[i] = dtype == DType::BF16 ? f32_to_bf16(data[i]) : f32_to_f16(data[i]);
  BWLA_ASSERT(dtype == DType::BF16 || dtype == DType::F16, "bad dtype {}", dtype_name(dtype));
  add(name, dtype, std::move(shape), h.data(), (size_t)n * 2);
}

void SafeTensorsWriter::write(const std::string& path) const {
  // Lay out: compute offsets with padding, then render header; header length
  // is padded with spaces so the data buffer starts at a multiple of align_.
  struct Placed {
    const Entry* e;
    std::string pad_name;
    uint64_t b, en;
  };
  // The header size depends on offsets, and the offsets' alignment depends on
  // the header size; iterate until stable (converges in <= 3 rounds).
  size_t header_len = 0;
  std::string header_str;
  std::vector<Placed> placed;
  for (int round = 0; round < 8; ++round) {
    placed.clear();
    uint64_t off = 0;
    size_t data_start = 8 + header_len;
    int npad = 0;
    for (auto& e : entries_) {
      size_t abs = data_start + off;
      size_t mis = align_ > 1 ? abs % align_ : 0;
      if (mis) {
        uint64_t padn = align_ - mis;
        placed.push_back({nullptr, fmt::format("__pad{}", npad++), off, off + padn});
        off += padn;
      }
      placed.push_back({&e, "", off, off + e.size()});
      off += e.size();
    }
    json h = json::object();
    if (!metadata_.empty()) h["__metadata__"] = metadata_;
    for (auto& p : placed) {
      if (p.e)
        h[p.e->name] = {{"dtype", dtype_name(p.e->dtype)},
                        {"shape", p.e->shape},
                        {"data_offsets", {p.b, p.en}}};
      else
        h[p.pad_name] = {{"dtype", "U8"}, {"shape", {p.en - p.b}}, {"data_offsets", {p.b, p.en}}};
    }
    std::string s = h.dump();
    size_t len = s.size();
    size_t a = std::max<size_t>(align_, 8);
    size_t total = ((8 + len + a - 1) / a) * a;
    size_t want = total - 8;
    if (want == header_len) {
      s.resize(want, ' ');
      header_str = std::move(s);
      break;
    }
    header_len = want;
  }
  BWLA_ASSERT(!header_str.empty() || entries_.empty(), "header layout did not converge{}", "");
  if (header_str.empty()) header_str = std::string("{}") + std::string(6, ' ');
  const std::string tmp = temp_sibling(path);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("cannot write '{}': {}", path, std::strerror(errno));
    uint64_t hl = header_str.size();
    f.write((const char*)&hl, 8);
    f.write(header_str.data(), (std::streamsize)header_str.size());
    std::vector<char> zeros(align_ + 8, 0);
    for (auto& p : placed) {
      if (p.e) {
        f.write((const char*)p.e->ptr(), (std::streamsize)p.e->size());
        if (p.e->after_write) p.e->after_write();
      } else {
        f.write(zeros.data(), (std::streamsize)(p.en - p.b));
      }
    }
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      fail("write failed for '{}'", path);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(err));
  }
}

TensorStore::TensorStore(const std::string& dir) : dir_(dir) {
  std::string single = dir + "/model.safetensors";
  std::string index = dir + "/model.safetensors.index.json";
  if (file_exists(index)) {
    json j = load_json_file(index);
    BWLA_CHECK(j.contains("weight_map") && j["weight_map"].is_object(),
               "'{}': no weight_map object", index);
    std::map<std::string, const SafeTensorsFile*> by_file;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      BWLA_CHECK(it->is_string(), "'{}': weight_map entry '{}' is not a file name", index, it.key());
      std::string fn = it->get<std::string>();
      BWLA_CHECK(fn.find('/') == std::string::npos && fn.find("..") == std::string::npos,
                 "'{}': weight_map entry '{}' names a file outside the directory: '{}'", index,
                 it.key(), fn);
      if (!by_file.count(fn)) {
        files_.push_back(std::make_unique<SafeTensorsFile>(dir + "/" + fn));
        by_file[fn] = files_.back().get();
      }
      const SafeTensorsFile* f = by_file[fn];
      BWLA_CHECK(f->has(it.key()), "'{}': index says tensor '{}' is in '{}' but it is not there",
                 index, it.key(), f->path());
      where_[it.key()] = f;
    }
  } else if (file_exists(single)) {
    files_.push_back(std::make_unique<SafeTensorsFile>(single));
    for (auto& n : files_.back()->names()) where_[n] = files_.back().get();
  } else {
    fail("'{}': no model.safetensors or model.safetensors.index.json found", dir);
  }
  for (auto& [k, f] : where_) used_.try_emplace(k, false);
  for (auto& f : files_)
    for (auto& [k, v] : f->metadata())
      if (!where_.count(k) && where_.count(v)) add_alias(k, v);
}

void TensorStore::add_alias(const std::string& name, const std::string& target) {
  BWLA_CHECK(!where_.count(name), "'{}': cannot alias '{}' to '{}': '{}' is stored itself", dir_,
             name, target, name);
  BWLA_CHECK(where_.count(target), "'{}': alias '{}' names a missing tensor '{}'", dir_, name,
             target);
  alias_[name] = target;
}

std::vector<std::string> TensorStore::unused() const {
  std::vector<std::string> out;
  for (auto& [k, u] : used_)
    if (!u.load(std::memory_order_relaxed)) out.push_back(k);
  return out;
}

void TensorStore::mark_used(const std::string& name) const {
  auto it = used_.find(name);
  if (it != used_.end()) it->second.store(true, std::memory_order_relaxed);
}

void SafeTensorsFile::release(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it != tensors_.end()) file_.release(it->second.data, it->second.nbytes);
}

const TensorView& TensorStore::get(const std::string& name) const {
  if (auto a = alias_.find(name); a != alias_.end()) return get(a->second);
  auto it = where_.find(name);
  if (it == where_.end()) fail("'{}': missing tensor '{}'", dir_, name);
  mark_used(name);
  return it->second->get(name);
}

void TensorStore::release(const std::string& name) const {
  if (auto a = alias_.find(name); a != alias_.end()) return release(a->second);
  auto it = where_.find(name);
  if (it != where_.end()) it->second->release(name);
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (auto& [k, v] : where_) out.push_back(k);
  return out;
}

std::string TensorStore::main_dtype() const {
  for (auto& [k, f] : where_) {
    auto& t = f->get(k);
    if (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16)
      return dtype_name(t.dtype);
  }
  return "none";
}

size_t TensorStore::total_bytes() const {
  size_t n = 0;
  for (auto& [k, f] : where_) n += f->get(k).nbytes;
  return n;
}

}  // namespace bwla
