#include "io/json.h"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "io/mmap.h"
#include "io/output_path.h"

namespace bwla {

json parse_json_text(const char* begin, const char* end, const std::string& where) {
  // Keys seen in each open object: a repeated key is an error (nlohmann would
  // silently keep the last value, so one file could be read two ways).
  std::vector<std::unordered_set<std::string>> open;
  auto check = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (depth > kMaxJsonDepth)
      fail("'{}': JSON nested deeper than {} levels", where, kMaxJsonDepth);
    switch (ev) {
      case json::parse_event_t::object_start: open.emplace_back(); break;
      case json::parse_event_t::object_end: open.pop_back(); break;
      case json::parse_event_t::key:
        if (!open.back().insert(parsed.get<std::string>()).second)
          fail("'{}': key '{}' appears twice in one JSON object", where,
               parsed.get<std::string>());
        break;
      default: break;
    }
    return true;
  };
  try {
    return json::parse(begin, end, check);
  } catch (const json::exception& e) {
    fail("'{}': invalid JSON: {}", where, e.what());
  }
}

json load_json_file(const std::string& path) {
  std::string text = read_text_file(path);
  return parse_json_text(text, path);
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = temp_sibling(path);
  bool ok;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("cannot write '{}': {}", path, std::strerror(errno));
    f.write(text.data(), (std::streamsize)text.size());
    f.flush();
    ok = (bool)f;
  }
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail("cannot write '{}': {}", path, std::strerror(err));
  }
}

namespace {
bool present(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && !obj[key].is_null();
}
// A value for an error message, cut short (it may be a huge array).
std::string brief(const json& v) {
  std::string s = v.dump();
  return s.size() <= 60 ? s : s.substr(0, 57) + "...";
}
}  // namespace

[[noreturn]] void throw_json_context_error(const std::string& file, const json::exception& e) {
  fail("'{}': {}", file, e.what());
}

long long json_int_value(const json& v, long long lo, long long hi, const std::string& what) {
  long long x = 0;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned()) {
      const auto u = v.get<unsigned long long>();
      BWLA_CHECK(u <= (unsigned long long)hi, "{} is {}, above the largest allowed value {}", what, u, hi);
      x = (long long)u;
    } else {
      x = v.get<long long>();
    }
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    BWLA_CHECK(std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15,
               "{} must be an integer, got {}", what, brief(v));
    x = (long long)d;
  } else {
    fail("{} must be an integer, got {}", what, brief(v));
  }
  BWLA_CHECK(x >= lo && x <= hi, "{} is {}, outside the allowed range [{}, {}]", what, x, lo, hi);
  return x;
}

int json_int(const json& v, const std::string& what) {
  return (int)json_int_value(v, INT_MIN, INT_MAX, what);
}

bool json_is_int(const json& v) {
  if (v.is_number_unsigned()) return v.get<unsigned long long>() <= (unsigned long long)INT_MAX;
  if (v.is_number_integer()) return v.get<long long>() >= INT_MIN && v.get<long long>() <= INT_MAX;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d) && d >= INT_MIN && d <= INT_MAX;
}

long long json_int(const json& obj, const char* key, long long def, long long lo, long long hi,
                   const std::string& where) {
  if (!present(obj, key)) return def;
  return json_int_value(obj[key], lo, hi, fmt::format("'{}': '{}'", where, key));
}

long long json_int_req(const json& obj, const char* key, long long lo, long long hi,
                       const std::string& where) {
  BWLA_CHECK(present(obj, key), "'{}': missing required key '{}'", where, key);
  return json_int(obj, key, 0, lo, hi, where);
}

double json_number(const json& obj, const char* key, double def, double lo, double hi,
                   const std::string& where) {
  if (!present(obj, key)) return def;
  const json& v = obj[key];
  BWLA_CHECK(v.is_number(), "'{}': '{}' must be a number, got {}", where, key, brief(v));
  const double d = v.get<double>();
  BWLA_CHECK(std::isfinite(d) && d >= lo && d <= hi,
             "'{}': '{}' is {}, outside the allowed range [{}, {}]", where, key, brief(v), lo, hi);
  return d;
}

double json_number_req(const json& obj, const char* key, double lo, double hi,
                       const std::string& where) {
  BWLA_CHECK(present(obj, key), "'{}': missing required key '{}'", where, key);
  return json_number(obj, key, 0, lo, hi, where);
}

bool json_bool(const json& obj, const char* key, bool def, const std::string& where) {
  if (!present(obj, key)) return def;
  BWLA_CHECK(obj[key].is_boolean(), "'{}': '{}' must be true or false, got {}", where, key,
             brief(obj[key]));
  return obj[key].get<bool>();
}

std::string json_string(const json& obj, const char* key, const std::string& def,
                        const std::string& where) {
  if (!present(obj, key)) return def;
  BWLA_CHECK(obj[key].is_string(), "'{}': '{}' must be a string, got {}", where, key,
             brief(obj[key]));
  return obj[key].get<std::string>();
}

void write_owned_json_file(const std::string& path, json j) {
  j["written_by"] = "bwla";
  write_text_file_atomic(path, j.dump(2));
}

bool json_written_by_bwla(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("written_by") && j["written_by"] == "bwla";
}

}  // namespace bwla
