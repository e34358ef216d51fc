// Progress line on stderr with rate and ETA; silent when BWLA_LOG=0 or when
// stderr is not a terminal (then it prints at most ~every 5 s, one line each).
#pragma once
#include <string>

#include "core/timer.h"

namespace bwla {

class Progress {
 public:
  Progress(std::string label, long total);
  ~Progress();
  void update(long done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed() const { return timer_.seconds(); }

 private:
  std::string label_;
  long total_;
  Timer timer_;
  double last_print_ = -1e9;
  bool tty_;
  bool finished_ = false;
};

}  // namespace bwla
