// Peak resident set size of this process.
#pragma once

namespace bwla {

// getrusage's ru_maxrss in bytes (Linux reports it in KiB).
long peak_rss_bytes();

}  // namespace bwla
