#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "quant/transform.h"
#include "quant_testing.h"

using namespace bwla;

class HadamardDims : public ::testing::TestWithParam<int> {};

TEST_P(HadamardDims, OrthogonalInvertibleAndOutputInvariant) {
  const int dim = GetParam();
  auto t = make_random_hadamard(dim, 42);
  ASSERT_EQ(t->dim(), dim);
  MatrixRM r = explicit_matrix(*t);
  MatrixRM rtr = r.transpose() * r;
  EXPECT_LT((rtr - MatrixRM::Identity(dim, dim)).cwiseAbs().maxCoeff(), 1e-5f);
  // inverse
  MatrixRM x = test::gaussian(5, dim, 1);
  MatrixRM y = x;
  t->apply_rows(y.data(), y.rows());
  EXPECT_GT((y - x).norm(), 1e-3f * x.norm());  // it does something
  // apply_rows matches the explicit matrix: row -> R·row
  MatrixRM y_ref = x * r.transpose();
  EXPECT_LT((y - y_ref).norm() / x.norm(), 1e-5f);
  t->apply_rows_inverse(y.data(), y.rows());
  EXPECT_LT((y - x).norm() / x.norm(), 1e-5f);
  // output invariance: W·x = (W·Rᵀ)(R·x)
  MatrixRM w = test::gaussian(7, dim, 2);
  MatrixRM wr = w;
  apply_to_weight(*t, wr);
  MatrixRM xr = x;
  t->apply_rows(xr.data(), xr.rows());
  MatrixRM o1 = x * w.transpose(), o2 = xr * wr.transpose();
  EXPECT_LT((o1 - o2).norm() / o1.norm(), 1e-5f);
  // seed-regenerable: same seed -> same matrix, other seed -> different
  EXPECT_EQ((explicit_matrix(*make_random_hadamard(dim, 42)) - r).norm(), 0.0f);
  EXPECT_GT((explicit_matrix(*make_random_hadamard(dim, 43)) - r).norm(), 1e-2f);
  EXPECT_EQ(t->storage_bits(), 64.0);
}

INSTANTIATE_TEST_SUITE_P(Dims, HadamardDims, ::testing::Values(1, 2, 64, 256, 172, 96, 44, 7));

TEST(Hadamard, PowerOfTwoIsScaledHadamardWithSigns) {
  // Every entry of a randomized Hadamard matrix has magnitude 1/√n.
  const int n = 128;
  HadamardTransform t(n, 9);
  EXPECT_EQ(t.pow2_factor(), 128);
  EXPECT_EQ(t.odd_factor(), 1);
  MatrixRM r = explicit_matrix(t);
  EXPECT_LT((r.cwiseAbs().array() - 1.0f / std::sqrt((float)n)).abs().maxCoeff(), 1e-6f);
  EXPECT_EQ(t.explicit_storage_bits(), 128.0 + 32.0);
}

TEST(Hadamard, FactorisationOfModelDims) {
  HadamardTransform a(5632, 1), b(1536, 1), c(172, 1);
  EXPECT_EQ(a.pow2_factor(), 512);
  EXPECT_EQ(a.odd_factor(), 11);
  EXPECT_EQ(b.pow2_factor(), 512);
  EXPECT_EQ(b.odd_factor(), 3);
  EXPECT_EQ(c.pow2_factor(), 4);
  EXPECT_EQ(c.odd_factor(), 43);
}

TEST(Hadamard, FwhtKnownAnswer) {
  float x[4] = {1, 0, 0, 0};
  fwht_rows(x, 4, 1);
  for (float v : x) EXPECT_EQ(v, 1.0f);
  float y[4] = {1, 2, 3, 4};
  fwht_rows(y, 4, 1);  // H4·y = (10, -2, -4, 0)
  EXPECT_EQ(y[0], 10.f);
  EXPECT_EQ(y[1], -2.f);
  EXPECT_EQ(y[2], -4.f);
  EXPECT_EQ(y[3], 0.f);
}

TEST(Hadamard, SpreadsOutliers) {
  // A one-hot token becomes flat: max|R·e| = 1/√n for power-of-two n.
  const int n = 1024;
  HadamardTransform t(n, 3);
  std::vector<float> v(n, 0.f);
  v[17] = 10.f;
  t.apply_rows(v.data(), 1);
  for (float e : v) EXPECT_NEAR(std::fabs(e), 10.f / 32.f, 1e-5f);
}

TEST(Hadamard, RejectsBadDim) { EXPECT_THROW(HadamardTransform(0, 1), Error); }

// The hand-written Householder QR behind Q_m (kernels/hadamard.h) against
// Eigen's, and the properties that define its Q: orthogonal, Qᵀ·G upper
// triangular with a non-negative diagonal.
class OrthogonalFactor : public ::testing::TestWithParam<int> {};

TEST_P(OrthogonalFactor, MatchesEigenQrAndIsTheUniqueQ) {
  const int n = GetParam();
  Rng rng(1234 + n);
  MatrixD g(n, n);
  std::vector<double> gv((size_t)n * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) gv[(size_t)i * n + j] = g(i, j) = rng.normal();
  const std::vector<double> qv = orthogonal_factor(gv, n);
  const MatrixD q = Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(qv.data(), n, n);
  EXPECT_LT((q.transpose() * q - MatrixD::Identity(n, n)).cwiseAbs().maxCoeff(), 1e-13);
  const MatrixD r = q.transpose() * g;
  for (int i = 0; i < n; ++i) {
    EXPECT_GE(r(i, i), 0.0) << i;
    for (int j = 0; j < i; ++j) EXPECT_LT(std::fabs(r(i, j)), 1e-12) << i << "," << j;
  }
  Eigen::HouseholderQR<MatrixD> qr(g);
  MatrixD qe = qr.householderQ();
  for (int j = 0; j < n; ++j)
    if (qr.matrixQR()(j, j) < 0) qe.col(j) = -qe.col(j);
  EXPECT_LT((q - qe).cwiseAbs().maxCoeff(), 1e-13);
}

INSTANTIATE_TEST_SUITE_P(Sizes, OrthogonalFactor, ::testing::Values(1, 2, 3, 7, 11, 43, 75));

TEST(OrthogonalFactorInput, ZeroColumnAndBadSize) {
  // A zero first column: no reflection there; Q stays orthogonal.
  std::vector<double> g = {0, 1, 0, 2};
  const std::vector<double> q = orthogonal_factor(g, 2);
  EXPECT_NEAR(q[0] * q[0] + q[2] * q[2], 1.0, 1e-15);
  EXPECT_NEAR(q[0] * q[1] + q[2] * q[3], 0.0, 1e-15);
  EXPECT_THROW(orthogonal_factor({1, 2, 3}, 2), Error);
}
