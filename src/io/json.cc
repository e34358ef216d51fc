#include "io/json.h"

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "io/mmap.h"

namespace bwla {

json load_json_file(const std::string& path) {
  std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("'{}': invalid JSON: {}", path, e.what());
  }
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("cannot write '{}'", tmp);
    f.write(text.data(), (std::streamsize)text.size());
    if (!f) fail("write failed for '{}'", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename '{}' to '{}'", tmp, path);
}

}  // namespace bwla
