#include "quant/psp_svd.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace bwla {

namespace {

MatrixRM orthonormal_columns(const MatrixRM& y) {
  Eigen::HouseholderQR<MatrixRM> qr(y);
  return qr.householderQ() * MatrixRM::Identity(y.rows(), y.cols());
}

}  // namespace

SvdFactors top_svd(const MatrixRM& m, int k, uint64_t seed, int power_iters, int oversample,
                   int exact_max) {
  const long rows = m.rows(), cols = m.cols(), mn = std::min(rows, cols);
  BWLA_CHECK(rows > 0 && cols > 0, "top_svd: empty matrix {}x{}", rows, cols);
  BWLA_CHECK(k >= 0 && k <= mn, "top_svd: rank {} outside [0, {}] for {}x{}", k, mn, rows, cols);
  BWLA_CHECK(power_iters >= 0 && oversample >= 0, "top_svd: bad power_iters {} / oversample {}",
             power_iters, oversample);
  SvdFactors f;
  if (k == 0) {
    f.u.resize(rows, 0);
    f.s.resize(0);
    f.v.resize(cols, 0);
    return f;
  }
  const long l = std::min<long>(mn, k + oversample);
  if (mn <= exact_max || l >= mn) {
    Eigen::BDCSVD<MatrixD> svd(m.cast<double>(), Eigen::ComputeThinU | Eigen::ComputeThinV);
    f.u = svd.matrixU().leftCols(k).cast<float>();
    f.s = svd.singularValues().head(k).cast<float>();
    f.v = svd.matrixV().leftCols(k).cast<float>();
    return f;
  }
  Rng rng(seed ^ 0x5053505356ull);
  MatrixRM omega(cols, l);
  for (long i = 0; i < omega.size(); ++i) omega.data()[i] = (float)rng.normal();
  MatrixRM q = orthonormal_columns(m * omega);  // [rows, l]
  for (int p = 0; p < power_iters; ++p) {
    MatrixRM z = orthonormal_columns(m.transpose() * q);  // [cols, l]
    q = orthonormal_columns(m * z);
  }
  const MatrixD b = (q.transpose() * m).cast<double>();  // [l, cols]
  Eigen::BDCSVD<MatrixD> svd(b, Eigen::ComputeThinU | Eigen::ComputeThinV);
  f.u = q * svd.matrixU().leftCols(k).cast<float>();
  f.s = svd.singularValues().head(k).cast<float>();
  f.v = svd.matrixV().leftCols(k).cast<float>();
  return f;
}

}  // namespace bwla
