// JSON helpers: parse a file with the path in every error.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace bwla {
using json = nlohmann::json;

// Deepest nesting accepted: every file bwla reads nests a few levels; a
// deeper document is refused before it can exhaust the stack of code that
// walks it recursively (copies, comparisons, dumps).
inline constexpr int kMaxJsonDepth = 64;

// Parses `text`; errors (syntax, nesting deeper than kMaxJsonDepth) name `where`.
json parse_json_text(const char* begin, const char* end, const std::string& where);
inline json parse_json_text(const std::string& text, const std::string& where) {
  return parse_json_text(text.data(), text.data() + text.size(), where);
}
json load_json_file(const std::string& path);
// Writes atomically (a temporary file beside `path`, then rename).
void write_text_file_atomic(const std::string& path, const std::string& text);

// Typed reads of obj[key] (obj must be an object); errors name `where` (the
// file, and the enclosing key for a nested object) and the key. A missing or
// null key gives `def`; the *_req forms require the key.
// Integers must be exact (1 and 1.0 pass, 4.9 and 2^40 for an int field do
// not) and within [lo, hi]; numbers must be finite and within [lo, hi].
long long json_int(const json& obj, const char* key, long long def, long long lo, long long hi,
                   const std::string& where);
long long json_int_req(const json& obj, const char* key, long long lo, long long hi,
                       const std::string& where);
double json_number(const json& obj, const char* key, double def, double lo, double hi,
                   const std::string& where);
double json_number_req(const json& obj, const char* key, double lo, double hi,
                       const std::string& where);
bool json_bool(const json& obj, const char* key, bool def, const std::string& where);
std::string json_string(const json& obj, const char* key, const std::string& def,
                        const std::string& where);
// A value that should be an integer (an element of an array, say).
long long json_int_value(const json& v, long long lo, long long hi, const std::string& what);
// The same within int's range (what names the file and key).
int json_int(const json& v, const std::string& what);
// Whether json_int(v, ...) would accept v.
bool json_is_int(const json& v);

[[noreturn]] void throw_json_context_error(const std::string& file, const json::exception& e);
// Runs fn; a nlohmann error escaping it (a value of the wrong type deep in a
// document) becomes bwla::Error naming `file`. JSON_DIAGNOSTICS (set for the
// whole build) puts the key's JSON pointer into nlohmann's message.
template <typename F>
auto with_json_context(const std::string& file, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const json::exception& e) {
    throw_json_context_error(file, e);
  }
}
// JSON result files bwla writes (eval --json-out) carry "written_by": "bwla",
// so bwla recognises its own file and refuses to replace anyone else's.
void write_owned_json_file(const std::string& path, json j);
bool json_written_by_bwla(const std::string& path);
}  // namespace bwla
