#include "core/rss.h"

#include <sys/resource.h>

namespace bwla {

long peak_rss_bytes() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss * 1024L;
}

}  // namespace bwla
