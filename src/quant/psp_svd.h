// Top-k singular triplets for PSP's proximal low-rank step.
#pragma once
#include <cstdint>

#include "quant/matrix.h"

namespace bwla {

struct SvdFactors {
  MatrixRM u;  // [rows, k], orthonormal columns
  VectorF s;   // k singular values, descending
  MatrixRM v;  // [cols, k], orthonormal columns
};

// Largest `k` singular triplets of m (0 ≤ k ≤ min(rows, cols)).
// Small matrices (min dimension ≤ exact_max) use an exact BDCSVD in double;
// larger ones a randomized range finder (Halko–Martinsson–Tropp): Gaussian
// test matrix with `oversample` extra columns and `power_iters` re-orthonormalised
// power iterations, then an exact SVD of the small projected matrix. Cost
// O(rows·cols·(k + oversample)·(2·power_iters + 2)).
SvdFactors top_svd(const MatrixRM& m, int k, uint64_t seed = 0, int power_iters = 2,
                   int oversample = 8, int exact_max = 512);

}  // namespace bwla
