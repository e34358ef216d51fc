#include "quant/rc_factors.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bwla {

RcFactors::RcFactors(int rows_, int cols_, int block_cols_)
    : rows(rows_), cols(cols_), block_cols(block_cols_) {
  BWLA_ASSERT(rows > 0 && cols > 0 && block_cols > 0, "RcFactors {}x{} block {}", rows, cols,
              block_cols);
  blocks = (cols + block_cols - 1) / block_cols;
  code.assign((size_t)rows * cols, 1);  // concentrated, sign −1
  a.assign((size_t)kPlanes * rows * blocks, 0.0f);
  mu.assign((size_t)kGroups * rows * blocks, 0.0f);
  c.assign((size_t)kPlanes * cols, 0.0f);
}

float RcFactors::weight(int i, int j) const {
  const int b = j / block_cols;
  const uint8_t q = code[(size_t)i * cols + j];
  const int g = q & kGroupMask;
  const float s1 = q & kSign ? 1.0f : -1.0f;
  const int k = g == 0 ? 0 : g + 1;
  float v = A(k, i, b) * s1 * C(k, j) + M(g, i, b);
  if (g == 0) v += A(1, i, b) * (q & kSign2 ? 1.0f : -1.0f) * C(1, j);
  return v;
}

MatrixRM compose_rc(const RcFactors& f) {
  MatrixRM w(f.rows, f.cols);
  for (int i = 0; i < f.rows; ++i)
    for (int j = 0; j < f.cols; ++j) w(i, j) = f.weight(i, j);
  return w;
}

double rc_mismatch(const RcFactors& f, const MatrixRM& w_hat) {
  BWLA_ASSERT(w_hat.rows() == f.rows && w_hat.cols() == f.cols, "rc_mismatch {}x{} vs {}x{}",
              w_hat.rows(), w_hat.cols(), f.rows, f.cols);
  double mx = 0, d = 0;
  for (int i = 0; i < f.rows; ++i)
    for (int j = 0; j < f.cols; ++j) {
      mx = std::max(mx, (double)std::fabs(w_hat(i, j)));
      d = std::max(d, (double)std::fabs(f.weight(i, j) - w_hat(i, j)));
    }
  return mx > 0 ? d / mx : d;
}

}  // namespace bwla
