// Software prefetch of a weight stream (internal to src/kernels/).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace bwla::detail {

// Prefetches the lines [p + ahead, p + ahead + bytes). Decode streams each
// weight once from DRAM; the hardware prefetcher alone leaves the kernels
// waiting on misses. BWLA_PF_AHEAD (bytes) may be set at build time to tune
// the distance.
#ifndef BWLA_PF_AHEAD
#define BWLA_PF_AHEAD 6144
#endif
inline void prefetch_ahead(const uint64_t* p, size_t bytes) {
  constexpr size_t kAhead = BWLA_PF_AHEAD;
  const char* c = reinterpret_cast<const char*>(p) + kAhead;
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

}  // namespace bwla::detail
