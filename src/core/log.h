// Minimal leveled logging to stderr (stdout is reserved for results / --json).
#pragma once
#include <fmt/format.h>
#include <cstdio>

namespace bwla {

enum class LogLevel { Quiet = 0, Info = 1, Debug = 2 };
LogLevel log_level();
void set_log_level(LogLevel l);

template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
  if (log_level() >= LogLevel::Info) {
    fmt::print(stderr, f, std::forward<Args>(args)...);
    std::fputc('\n', stderr);
  }
}
template <typename... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... args) {
  if (log_level() >= LogLevel::Debug) {
    fmt::print(stderr, f, std::forward<Args>(args)...);
    std::fputc('\n', stderr);
  }
}
template <typename... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "warning: ");
  fmt::print(stderr, f, std::forward<Args>(args)...);
  std::fputc('\n', stderr);
}

}  // namespace bwla
