#include "quant/transform.h"

#include "core/error.h"
#include "kernels/kron.h"

namespace bwla {

MatrixRM InputTransform::explicit_matrix() const {
  // Column j of R is R·e_j; rows of the identity transformed give rows of Rᵀ.
  MatrixRM m = MatrixRM::Identity(dim(), dim());
  apply_rows(m.data(), m.rows());  // row j becomes R·e_j
  return m.transpose();
}

void InputTransform::run_stage(int, float* x, float*, int w0, int w1) const {
  if (w0 < 1 && w1 >= 1) apply_rows(x, 1);
}

KroneckerTransform::KroneckerTransform(MatrixRM r1, MatrixRM r2)
    : r1_(std::move(r1)), r2_(std::move(r2)) {
  BWLA_CHECK(r1_.rows() == r1_.cols() && r2_.rows() == r2_.cols(),
             "Kronecker factors must be square, got {}x{} and {}x{}", r1_.rows(), r1_.cols(),
             r2_.rows(), r2_.cols());
  r1t_ = r1_.transpose();
  r2t_ = r2_.transpose();
}

void KroneckerTransform::apply_rows(float* x, long rows) const {
  // R1ᵀ·V·R2 per token (kernels/kron.h; in place, OpenMP over tokens).
  kron_apply(x, x, (int)rows, r1_.data(), (int)r1_.rows(), r2_.data(), (int)r2_.rows());
}

void KroneckerTransform::apply_rows_inverse(float* x, long rows) const {
  // R1·V·R2ᵀ = (R1ᵀ)ᵀ·V·(R2ᵀ).
  kron_apply(x, x, (int)rows, r1t_.data(), (int)r1_.rows(), r2t_.data(), (int)r2_.rows());
}

void KroneckerTransform::run_stage(int stage, float* x, float* scratch, int w0, int w1) const {
  const int n1 = (int)r1_.rows(), n2 = (int)r2_.rows();
  if (stage == 0) kron_stage1(x, scratch, w0, w1, r2_.data(), n2);
  else kron_stage2(scratch, x, w0, w1, r1_.data(), n1, n2);
}

}  // namespace bwla
