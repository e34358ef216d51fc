#include "cli_common.h"


#include <algorithm>
#include <cstdio>
#include <thread>

#include "core/log.h"
#include "core/threads.h"

namespace bwla::cli {

void add_common(CLI::App* app, Common& c) {
  app->add_option("-t,--threads", c.threads, "threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app->add_flag("--json", c.json, "print one JSON object on stdout (human text on stderr)");
  app->add_flag("-q,--quiet", c.quiet, "no progress output");
}

void apply_common(const Common& c) {
  // More threads than a few per core only adds stacks and scheduling (and a
  // huge count exhausts memory in the runtime's thread pools).
  const int cores = std::max(1, (int)std::thread::hardware_concurrency());
  const int cap = kMaxThreadsPerCore * cores;
  int n = c.threads;
  if (n > cap) {
    log_warn("-t {}: capped at {} ({} per core on {} cores)", n, cap, kMaxThreadsPerCore, cores);
    n = cap;
  }
  set_num_threads(n);
  if (c.quiet) set_log_level(LogLevel::Quiet);
}

void print_json(const json& j) {
  std::string s = j.dump(2);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace bwla::cli
