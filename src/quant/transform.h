// The quantizers' view of the runtime input transforms (kernels/
// input_transform.h, kernels/hadamard.h): Eigen matrices in and out.
#pragma once
#include <memory>

#include "kernels/hadamard.h"
#include "kernels/input_transform.h"
#include "quant/matrix.h"

namespace bwla {

// The explicit dim()×dim() matrix R (for tests and small layers).
MatrixRM explicit_matrix(const InputTransform& t);
// W [out, dim] -> W·Rᵀ
inline void apply_to_weight(const InputTransform& t, MatrixRM& w) {
  t.apply_rows(w.data(), w.rows());
}
// R = R1 ⊗ R2 from square factors (a bwla::Error otherwise).
std::unique_ptr<KroneckerTransform> make_kronecker(const MatrixRM& r1, const MatrixRM& r2);
// The factors as matrices (views of the transform's arrays).
inline Eigen::Map<const MatrixRM> kron_r1(const KroneckerTransform& k) {
  return Eigen::Map<const MatrixRM>(k.r1().data(), k.n1(), k.n1());
}
inline Eigen::Map<const MatrixRM> kron_r2(const KroneckerTransform& k) {
  return Eigen::Map<const MatrixRM>(k.r2().data(), k.n2(), k.n2());
}

}  // namespace bwla
