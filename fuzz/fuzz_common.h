// Helpers shared by the libFuzzer targets in fuzz/: a per-process scratch
// directory for loaders that only take paths, and splitting one input into parts.
#pragma once
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <vector>

// libFuzzer's own mutator (for custom mutators that fall back to it).
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace bwla_fuzz {

// A directory under $TMPDIR (default: /dev/shm when it is a directory, else
// /tmp) created on first use and removed at normal exit (a crashing run leaves
// it behind for inspection). Memory-backed by default: rewriting small files on
// a disk file system costs milliseconds each (ext4 flushes truncated files).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* t = std::getenv("TMPDIR");
    std::error_code ec;
    std::string base = t && *t ? t : std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/bwla_fuzz_XXXXXX";
    if (!mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    static std::string keep;
    keep = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return tmpl;
  }();
  return dir;
}

// Writes bytes to DIR/name (replacing it); aborts if that fails (not the input's fault).
inline std::string write_file(const std::string& dir, const std::string& name,
                              std::string_view bytes) {
  std::string path = dir + "/" + name;
  std::remove(path.c_str());  // a new file, not a truncated one (see scratch_dir)
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

inline void remove_file(const std::string& dir, const std::string& name) {
  std::error_code ec;
  std::filesystem::remove(dir + "/" + name, ec);
}

// Splits at NUL bytes into at most max_parts parts (the last keeps any further NULs).
inline std::vector<std::string_view> split_nul(const uint8_t* data, size_t size, size_t max_parts) {
  std::vector<std::string_view> parts;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (parts.size() + 1 < max_parts) {
    size_t z = rest.find('\0');
    if (z == std::string_view::npos) break;
    parts.push_back(rest.substr(0, z));
    rest.remove_prefix(z + 1);
  }
  parts.push_back(rest);
  return parts;
}

// Byte mutations rarely turn a valid JSON value into another valid value of a
// different type, which is what JSON loaders get wrong most (a string where a
// number is expected, an object where an array is). This replaces one value
// (scalar or container, not an object key) found in data[begin, end) with a
// value of another kind, or with a copy of another value found there.
// Returns the new size, or 0 when there is no value or no room.
inline size_t mutate_json_value(uint8_t* data, size_t size, size_t max_size, size_t begin,
                                size_t end, std::minstd_rand& rng) {
  struct Span {
    size_t b, e;
  };
  std::vector<Span> spans;
  std::vector<size_t> open;
  auto is_num = [](uint8_t c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
  };
  auto is_ws = [](uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  for (size_t i = begin; i < end;) {
    const uint8_t c = data[i];
    if (c == '"') {
      size_t j = i + 1;
      while (j < end && data[j] != '"') j += data[j] == '\\' ? 2 : 1;
      if (j >= end) break;
      size_t k = j + 1;
      while (k < end && is_ws(data[k])) ++k;
      if (k >= end || data[k] != ':') spans.push_back({i, j + 1});  // a value, not a key
      i = j + 1;
    } else if (c == '[' || c == '{') {
      open.push_back(i++);
    } else if (c == ']' || c == '}') {
      if (!open.empty()) spans.push_back({open.back(), i + 1}), open.pop_back();
      ++i;
    } else if ((c >= '0' && c <= '9') || c == '-') {
      size_t j = i;
      while (j < end && is_num(data[j])) ++j;
      spans.push_back({i, j});
      i = j;
    } else if (c == 't' || c == 'f' || c == 'n') {
      size_t j = i;
      while (j < end && data[j] >= 'a' && data[j] <= 'z') ++j;
      spans.push_back({i, j});
      i = j;
    } else {
      ++i;
    }
  }
  if (spans.empty()) return 0;
  static const char* const kValues[] = {
      "null", "true", "false", "0", "1", "-1", "2", "7", "64", "0.5", "-0.0", "1e300", "-1e300",
      "65535", "100000000", "2147483647", "2147483648", "-2147483649", "4294967296",
      "9223372036854775807", "18446744073709551615", "\"\"", "\"a\"", "\"<s>\"", "\"0\"", "[]",
      "{}", "[0]", "[\"a\"]", "[[]]", "[{}]", "{\"type\":\"Sequence\"}", "{\"\":0}", "[null]",
      "[1,2]"};
  const Span t = spans[rng() % spans.size()];
  std::string repl;
  switch (rng() % 4) {
    case 0: {  // a copy of another value
      const Span o = spans[rng() % spans.size()];
      repl.assign(reinterpret_cast<const char*>(data) + o.b, o.e - o.b);
      break;
    }
    case 1:  // the value wrapped in an array
      repl = "[" + std::string(reinterpret_cast<const char*>(data) + t.b, t.e - t.b) + "]";
      break;
    default:
      repl = kValues[rng() % (sizeof(kValues) / sizeof(kValues[0]))];
  }
  const size_t new_size = size - (t.e - t.b) + repl.size();
  if (new_size > max_size) return 0;
  std::memmove(data + t.b + repl.size(), data + t.e, size - t.e);
  std::memcpy(data + t.b, repl.data(), repl.size());
  return new_size;
}

// A custom mutator body: half the time libFuzzer's mutations, otherwise
// mutate_json_value on data[begin, end) (falling back to libFuzzer's).
inline size_t mutate(uint8_t* data, size_t size, size_t max_size, unsigned seed, size_t begin,
                     size_t end) {
  std::minstd_rand rng(seed);
  if (rng() % 2 == 0) return LLVMFuzzerMutate(data, size, max_size);
  size_t n = mutate_json_value(data, size, max_size, begin, end, rng);
  return n ? n : LLVMFuzzerMutate(data, size, max_size);
}

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

}  // namespace bwla_fuzz
