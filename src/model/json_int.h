// Reading a JSON number as an int without nlohmann's silent conversions
// (get<int>() truncates 2.5, wraps 4294967297 to 1 and is undefined
// behaviour for 1e300).
#pragma once
#include <climits>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/json.h"

namespace bwla {

// Whether v is an integer in int's range (then (int)v.get<int64_t>() is exact).
inline bool json_is_int(const json& v) {
  return v.is_number_unsigned() ? v.get<uint64_t>() <= (uint64_t)INT_MAX
         : v.is_number_integer() ? v.get<int64_t>() >= INT_MIN && v.get<int64_t>() <= INT_MAX
                                 : false;
}

// v as an int; anything else throws bwla::Error "<what> must be an integer,
// got <v>" (what names the file and key).
inline int json_int(const json& v, const std::string& what) {
  BWLA_CHECK(json_is_int(v), "{} must be an integer, got {}", what, v.dump());
  return (int)v.get<int64_t>();
}

}  // namespace bwla
