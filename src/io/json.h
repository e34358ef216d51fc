// JSON helpers: parse a file with the path in every error.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace bwla {
using json = nlohmann::json;
json load_json_file(const std::string& path);
// Writes atomically (temporary file then rename).
void write_text_file_atomic(const std::string& path, const std::string& text);
}  // namespace bwla
