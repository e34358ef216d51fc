// Factorising a layer's input width m = n1·n2 for the Kronecker transform
// R = R1 ⊗ R2 of OKT (notes §1). Balanced factors (n1 ≈ n2 ≈ √m) minimise the
// online cost O(m·(n1+n2)) and were reported best.
#pragma once
#include <string>
#include <utility>

namespace bwla {

// n1 ≤ n2, n1·n2 = m, n1 the largest divisor of m with n1 ≤ √m.
// Prime m gives {1, m}. Requires m ≥ 1 (bwla::Error otherwise).
std::pair<int, int> balanced_factors(int m);

// The factorisation OKT actually uses, with the fallback policy for awkward m:
//  * n1 ≥ 2 and n2 ≤ max_factor: the balanced pair, usable.
//  * n1 == 1 (m prime, or m == 1) and m ≤ max_factor: {1, m}; the transform
//    degenerates to R2 alone, a full m×m learned orthogonal matrix (costly but
//    correct; `degenerate` is set).
//  * otherwise (n2 > max_factor, e.g. a large prime or 2·prime): not usable;
//    callers keep the identity transform and report `note`.
// Small n1 (2, 3) with n2 ≤ max_factor is accepted but flagged `degenerate`
// because the online cost approaches O(m²/n1).
struct KronFactors {
  int n1 = 1, n2 = 1;
  bool usable = true;
  bool degenerate = false;
  std::string note;
};
inline constexpr int kMaxKronFactor = 1024;
inline constexpr int kMinBalancedFactor = 4;
KronFactors okt_factors(int m, int max_factor = kMaxKronFactor);

}  // namespace bwla
