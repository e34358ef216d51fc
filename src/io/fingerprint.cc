#include "io/fingerprint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace bwla {
namespace fs = std::filesystem;

namespace {
struct Fnv1a {
  uint64_t h = 1469598103934665603ull;
  void add(const void* p, size_t n) {
    auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
};

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
}  // namespace

json file_fingerprint(const std::string& path) {
  struct stat st;
  BWLA_CHECK(::stat(path.c_str(), &st) == 0, "cannot stat '{}': {}", path, std::strerror(errno));
  FILE* f = std::fopen(path.c_str(), "rb");
  BWLA_CHECK(f, "cannot read '{}': {}", path, std::strerror(errno));
  uint64_t limit = (uint64_t)st.st_size;
  if (ends_with(path, ".safetensors")) {
    uint64_t hl = 0;
    if (std::fread(&hl, 1, 8, f) == 8) limit = std::min<uint64_t>(limit, 8 + hl);
    std::rewind(f);
  }
  Fnv1a h;
  std::vector<char> buf(1 << 16);
  uint64_t done = 0;
  while (done < limit) {
    size_t want = (size_t)std::min<uint64_t>(buf.size(), limit - done);
    size_t got = std::fread(buf.data(), 1, want, f);
    if (got == 0) break;
    h.add(buf.data(), got);
    done += got;
  }
  std::fclose(f);
  const long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  return {{"file", fs::path(path).filename().string()},
          {"bytes", (uint64_t)st.st_size},
          {"mtime_ns", mtime_ns},
          {"fnv1a64", fmt::format("{:016x}", h.h)}};
}

json checkpoint_fingerprint(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n == "config.json" || n == "model.safetensors.index.json" || ends_with(n, ".safetensors"))
      names.push_back(n);
  }
  BWLA_CHECK(!ec, "cannot list '{}': {}", dir, ec.message());
  std::sort(names.begin(), names.end());
  json a = json::array();
  for (const auto& n : names) a.push_back(file_fingerprint(dir + "/" + n));
  return a;
}

}  // namespace bwla
