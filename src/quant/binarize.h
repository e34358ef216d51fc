// Binarization primitives: a set of values v is approximated by
// v̂_i = μ + α·b_i with b_i ∈ {−1, +1} (b_i = +1 when v_i == μ).
//   * xnor_fit  — closed form of XNOR-Net/BiLLM: μ = mean(v), α = mean|v − μ|.
//   * arb_fit   — ARB-LLM alternating refinement (arXiv 2410.03129). Each step is
//                 an exact minimisation of ‖v − μ − α·b‖² over one variable:
//                   μ ← mean(v − α·b)
//                   α ← mean(b ⊙ (v − μ));  if α < 0: α ← −α (then b flips below)
//                   b ← sign(v − μ)
//                 so the error never increases.
//   * arb_rc_fit — ARB-RC on a masked matrix block: v̂_ij = a_i·b_ij·c_j + μ_i
//                 (row scale a, column scale c, row mean μ), same alternating
//                 exact updates over μ, a, c, b.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/matrix.h"

namespace bwla {

struct BinaryFit {
  float alpha = 0.f, mu = 0.f;
  float operator()(float v) const { return v >= mu ? mu + alpha : mu - alpha; }
};

BinaryFit xnor_fit(const float* v, int n);
// iters refinement rounds after the xnor_fit start. trace (optional) receives
// the squared error after the start and after each round (iters + 1 entries).
BinaryFit arb_fit(const float* v, int n, int iters, std::vector<double>* trace = nullptr);
double binary_sq_error(const float* v, int n, BinaryFit f);
void binary_apply(const float* v, int n, BinaryFit f, float* out);

// ARB-RC on the entries (i, j) of w (rows×cols, row-major) with gid(i, j) == g.
// Writes the approximation into w_hat at those entries only. Returns the
// squared error over the masked entries. trace as in arb_fit.
// with_mu = false fixes μ = 0 (used for the residual plane, whose offset is
// carried by the first plane).
// fit (optional) receives the final factors: a, μ per row, c per column (1 for
// columns without entries of the group), and the sign of every entry of the group.
using GroupIds = Eigen::Matrix<int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
struct ArbRcFit {
  std::vector<double> a, mu, c;
  Eigen::Matrix<int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> b;  // ±1
};
double arb_rc_fit(const MatrixRM& w, const GroupIds& gid, int g, int iters, bool with_mu,
                  MatrixRM& w_hat, std::vector<double>* trace = nullptr, ArbRcFit* fit = nullptr);

}  // namespace bwla
