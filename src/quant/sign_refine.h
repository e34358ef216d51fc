// Output-aware refinement of a one-plane binarization (signs and block scales)
// against the layer's quadratic output metric.
//
// A one-plane Ŵ has, per row i and column block k (block_cols columns),
//   ŵ_ij = μ_ik + α_ik·b_ij,  b_ij ∈ {−1, +1},
// and the layer's output error is f = Σ_i e_i·H·e_iᵀ with e_i = w_i − ŵ_i and
// H the damped Hessian (2·XᵀX/N + λI). The GPTQ sweep picks each sign once,
// left to right, with the error fed forward; it never revisits a sign once
// later columns have moved. This refinement alternates two exact descents:
//  * sign pass: coordinate descent over single sign flips. With g_i = H·e_iᵀ,
//    flipping b_ij changes ŵ_ij by δ = −2·α_ik·b_ij and f by
//    Δ = −2·δ·g_ij + δ²·H_jj; a flip is kept when Δ < 0, and g_i is updated by
//    −δ·H_j,: (one row of H). Sweeps repeat until none flips or sweep_limit.
//  * scale pass: all α_ik, μ_ik of row i refitted jointly by least squares in
//    the metric H (a 2·blocks system per row), kept only when f drops.
// Both steps never increase f, so the result is at least as good as the
// input in the layer metric. Rows are independent (deterministic under any
// thread count).
#pragma once
#include "quant/matrix.h"

namespace bwla {

struct SignRefineStats {
  double f_before = 0, f_after = 0;  // Σ_i e_i H e_iᵀ
  long flips = 0;
};

// w: target [R, C]; w_hat: one-plane approximation (two distinct values at
// most per row segment of block_cols columns; 0 = whole row), refined in
// place; h: damped Hessian [C, C] (float, symmetric).
SignRefineStats refine_signs(const MatrixRM& w, MatrixRM& w_hat, const MatrixRM& h,
                             int block_cols, int rounds, int sweep_limit = 4);

}  // namespace bwla
