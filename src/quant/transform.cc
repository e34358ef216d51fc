#include "quant/transform.h"

#include "core/error.h"

namespace bwla {

MatrixRM InputTransform::explicit_matrix() const {
  // Column j of R is R·e_j; rows of the identity transformed give rows of Rᵀ.
  MatrixRM m = MatrixRM::Identity(dim(), dim());
  apply_rows(m.data(), m.rows());  // row j becomes R·e_j
  return m.transpose();
}

KroneckerTransform::KroneckerTransform(MatrixRM r1, MatrixRM r2)
    : r1_(std::move(r1)), r2_(std::move(r2)) {
  BWLA_CHECK(r1_.rows() == r1_.cols() && r2_.rows() == r2_.cols(),
             "Kronecker factors must be square, got {}x{} and {}x{}", r1_.rows(), r1_.cols(),
             r2_.rows(), r2_.cols());
}

void KroneckerTransform::apply_rows(float* x, long rows) const {
  const long n1 = r1_.rows(), n2 = r2_.rows();
#pragma omp parallel for schedule(static) if (rows >= 16)
  for (long r = 0; r < rows; ++r) {
    Eigen::Map<MatrixRM> v(x + r * n1 * n2, n1, n2);
    MatrixRM t = r1_.transpose() * v * r2_;
    v = t;
  }
}

void KroneckerTransform::apply_rows_inverse(float* x, long rows) const {
  const long n1 = r1_.rows(), n2 = r2_.rows();
#pragma omp parallel for schedule(static) if (rows >= 16)
  for (long r = 0; r < rows; ++r) {
    Eigen::Map<MatrixRM> v(x + r * n1 * n2, n1, n2);
    MatrixRM t = r1_ * v * r2_.transpose();
    v = t;
  }
}

}  // namespace bwla
