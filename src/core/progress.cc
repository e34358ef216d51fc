#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "core/log.h"

namespace bwla {

Progress::Progress(std::string label, long total)
    : label_(std::move(label)), total_(total), tty_(isatty(fileno(stderr))) {}

Progress::~Progress() {
  if (!finished_ && tty_ && log_level() >= LogLevel::Info) std::fputc('\n', stderr);
}

void Progress::update(long done, const std::string& extra) {
  if (log_level() < LogLevel::Info) return;
  double t = timer_.seconds();
  double min_gap = tty_ ? 0.2 : 5.0;
  if (t - last_print_ < min_gap && done < total_) return;
  last_print_ = t;
  double eta = done > 0 ? t * (double)(total_ - done) / (double)done : 0.0;
  std::string line = fmt::format("{}: {}/{} ({:.0f}%) elapsed {:.1f}s ETA {:.1f}s {}", label_, done,
                                 total_, total_ ? 100.0 * done / total_ : 100.0, t, eta, extra);
  if (tty_)
    fmt::print(stderr, "\r{}\x1b[K", line);
  else
    fmt::print(stderr, "{}\n", line);
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (log_level() < LogLevel::Info) return;
  std::string line =
      fmt::format("{}: {}/{} done in {:.2f}s {}", label_, total_, total_, timer_.seconds(), extra);
  if (tty_)
    fmt::print(stderr, "\r{}\x1b[K\n", line);
  else
    fmt::print(stderr, "{}\n", line);
}

}  // namespace bwla
