// Errors for bad input (exceptions carrying file/key/shape context) and
// assertions for internal bugs (abort with values).
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace bwla {

// Thrown for anything a user can cause: bad files, bad options, bad shapes.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

[[noreturn]] inline void bug_abort(const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "bwla internal error at %s:%d: %s\n", file, line, msg.c_str());
  std::abort();
}

}  // namespace bwla

// User-facing check: throws bwla::Error with a formatted message.
#define BWLA_CHECK(cond, ...)                   \
  do {                                          \
    if (!(cond)) ::bwla::fail(__VA_ARGS__);     \
  } while (0)

// Internal invariant: aborts with the formatted values (a bug, not bad input).
#define BWLA_ASSERT(cond, ...)                                                      \
  do {                                                                              \
    if (!(cond))                                                                    \
      ::bwla::bug_abort(__FILE__, __LINE__,                                         \
                        std::string(#cond " failed: ") + fmt::format(__VA_ARGS__)); \
  } while (0)
