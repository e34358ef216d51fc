#include "quant/transform.h"

#include "core/error.h"

namespace bwla {

MatrixRM explicit_matrix(const InputTransform& t) {
  // Column j of R is R·e_j; rows of the identity transformed give rows of Rᵀ.
  MatrixRM m = MatrixRM::Identity(t.dim(), t.dim());
  t.apply_rows(m.data(), m.rows());  // row j becomes R·e_j
  return m.transpose();
}

std::unique_ptr<KroneckerTransform> make_kronecker(const MatrixRM& r1, const MatrixRM& r2) {
  BWLA_CHECK(r1.rows() == r1.cols() && r2.rows() == r2.cols(),
             "Kronecker factors must be square, got {}x{} and {}x{}", r1.rows(), r1.cols(),
             r2.rows(), r2.cols());
  return std::make_unique<KroneckerTransform>(
      std::vector<float>(r1.data(), r1.data() + r1.size()), (int)r1.rows(),
      std::vector<float>(r2.data(), r2.data() + r2.size()), (int)r2.rows());
}

}  // namespace bwla
