#include "core/log.h"

#include <atomic>
#include <cstdlib>

namespace bwla {
namespace {
std::atomic<int> g_level{[] {
  const char* e = std::getenv("BWLA_LOG");
  return e ? std::atoi(e) : 1;
}()};
}  // namespace
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
void set_log_level(LogLevel l) { g_level = static_cast<int>(l); }
}  // namespace bwla
