// Test helper: the message of the bwla::Error f throws ("" when it throws none).
#pragma once
#include <functional>
#include <string>

#include "core/error.h"

namespace bwla::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace bwla::test
