// Locating ../shared test data; tests GTEST_SKIP with a clear message when absent.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

namespace bwla::test {
inline std::string shared_dir() { return BWLA_SHARED_DIR; }
inline std::string shared_path(const std::string& rel) { return shared_dir() + "/" + rel; }
inline bool shared_exists(const std::string& rel) {
  struct stat st;
  return ::stat(shared_path(rel).c_str(), &st) == 0;
}
}  // namespace bwla::test

#define BWLA_REQUIRE_SHARED(rel)                                                  \
  do {                                                                            \
    if (!::bwla::test::shared_exists(rel))                                        \
      GTEST_SKIP() << "../shared/" << (rel) << " not found; skipping data test"; \
  } while (0)
