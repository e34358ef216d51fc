#include "quant/factorize.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"

namespace bwla {

std::pair<int, int> balanced_factors(int m) {
  BWLA_CHECK(m >= 1, "balanced_factors: width must be >= 1, got {}", m);
  int r = (int)std::sqrt((double)m);
  while ((long)r * r > m) --r;
  while ((long)(r + 1) * (r + 1) <= m) ++r;
  for (int n1 = r; n1 >= 1; --n1)
    if (m % n1 == 0) return {n1, m / n1};
  return {1, m};  // unreachable: 1 divides m
}

KronFactors okt_factors(int m, int max_factor) {
  BWLA_CHECK(max_factor >= 1, "okt_factors: max_factor must be >= 1, got {}", max_factor);
  auto [n1, n2] = balanced_factors(m);
  KronFactors f;
  f.n1 = n1;
  f.n2 = n2;
  if (n2 > max_factor) {
    f.usable = false;
    f.note = fmt::format(
        "width {} = {}x{}: factor {} exceeds {}; keeping identity (no OKT)", m, n1, n2, n2,
        max_factor);
  } else if (n1 == 1) {
    f.degenerate = true;
    f.note = fmt::format("width {} has no factor > 1; OKT uses one full {}x{} rotation", m, m,
                         m);
  } else if (n1 < kMinBalancedFactor) {
    f.degenerate = true;
    f.note = fmt::format("width {} = {}x{} is unbalanced; online cost ~m*{}", m, n1, n2,
                         n1 + n2);
  }
  return f;
}

}  // namespace bwla
