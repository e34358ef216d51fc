#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "quant/okt.h"
#include "quant/psp.h"
#include "quant/psp_svd.h"

using namespace bwla;

namespace {

MatrixRM gaussian(long r, long c, uint64_t seed, double sd = 1.0) {
  Rng rng(seed);
  MatrixRM m(r, c);
  for (long i = 0; i < m.size(); ++i) m.data()[i] = (float)(sd * rng.normal());
  return m;
}

// Gaussian weights plus a strong low-rank part and a few outlier columns.
MatrixRM structured_weights(long out, long in, uint64_t seed) {
  MatrixRM w = gaussian(out, in, seed, 0.02);
  w += gaussian(out, 4, seed + 1, 0.05) * gaussian(4, in, seed + 2, 1.0);
  Rng rng(seed + 3);
  for (int k = 0; k < std::max<long>(1, in / 100); ++k) w.col((long)rng.below(in)) *= 10.0f;
  return w;
}

double reconstruction_error(const MatrixRM& w, const PspResult& p, const InputTransform* rot) {
  MatrixRM d = p.w_hat_rot;
  if (rot) rot->apply_rows_inverse(d.data(), d.rows());
  return (w - p.a * p.b - d).norm() / w.norm();
}

}  // namespace

TEST(PspSvd, RandomizedMatchesExact) {
  // Decaying spectrum, min dimension above the exact threshold.
  const long n = 600, m = 640;
  MatrixRM u = gaussian(n, 40, 1), v = gaussian(40, m, 2);
  for (int k = 0; k < 40; ++k) u.col(k) *= (float)std::pow(0.8, k);
  MatrixRM a = u * v + gaussian(n, m, 3, 1e-3);
  SvdFactors exact = top_svd(a, 8, 0, 2, 8, /*exact_max=*/100000);
  SvdFactors fast = top_svd(a, 8, 0, 2, 8, /*exact_max=*/512);
  ASSERT_EQ(fast.s.size(), 8);
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(fast.s[k], exact.s[k], 2e-3 * exact.s[0]) << k;
  const MatrixRM le = exact.u * exact.s.asDiagonal() * exact.v.transpose();
  const MatrixRM lf = fast.u * fast.s.asDiagonal() * fast.v.transpose();
  EXPECT_LT((le - lf).norm(), 1e-2 * le.norm());
  EXPECT_THROW(top_svd(a, 601, 0), Error);
}

TEST(Psp, NeverWorseThanPlainAndRespectsRank) {
  const MatrixRM w = structured_weights(96, 128, 10);
  PspOptions opt;
  opt.rank = 6;
  PspResult p = run_psp(w, nullptr, xnor_row_binarizer(), opt);
  ASSERT_EQ(p.a.rows(), 96);
  ASSERT_EQ(p.a.cols(), 6);
  ASSERT_EQ(p.b.rows(), 6);
  ASSERT_EQ(p.b.cols(), 128);
  ASSERT_FALSE(p.residual.empty());
  // Iteration 0 is plain binarization.
  EXPECT_NEAR(p.residual[0], std::sqrt(binarization_error(w)), 1e-5);
  EXPECT_LE(p.error, p.residual[0]);
  for (double e : p.residual) EXPECT_LE(p.error, e + 1e-12);
  EXPECT_NEAR(reconstruction_error(w, p, nullptr), p.error, 1e-4);
  // A strong rank-4 component: the low-rank branch must help a lot.
  EXPECT_LT(p.error, 0.7 * p.residual[0]);
  Eigen::JacobiSVD<MatrixD> svd((p.a * p.b).cast<double>());
  const auto s = svd.singularValues();
  for (long k = 6; k < s.size(); ++k) EXPECT_LT(s[k], 1e-5 * s[0]) << k;
}

// Warm-up iterations binarize with the cheap binarizer; only pairs from the real
// one can be returned, and the warm count is clamped so at least one is real.
TEST(Psp, WarmIterationsOnlySteerTheBranch) {
  const MatrixRM w = structured_weights(96, 128, 12);
  // "Real" binarizer: sign·α rows rounded to a coarse grid, so its output is
  // recognisably different from the surrogate's.
  int real_calls = 0;
  Binarizer real = [&](const MatrixRM& m) {
    ++real_calls;
    MatrixRM q = xnor_binarize_rows(m);
    return MatrixRM((q.array() * 64.0f).round() / 64.0f);
  };
  const Binarizer warm = xnor_row_binarizer();
  PspOptions opt;
  opt.rank = 4;
  opt.iters = 6;
  opt.warm_iters = 4;
  PspResult p = run_psp(w, nullptr, real, opt, &warm);
  EXPECT_EQ(real_calls, 2);
  EXPECT_EQ((int)p.residual.size(), 6);
  EXPECT_GE(p.best_iter, 4);
  const MatrixRM again = real(w - p.a * p.b);
  EXPECT_EQ((again - p.w_hat_rot).cwiseAbs().maxCoeff(), 0.0f);
  opt.warm_iters = 100;  // clamped to iters - 1
  real_calls = 0;
  PspResult q = run_psp(w, nullptr, real, opt, &warm);
  EXPECT_EQ(real_calls, 1);
  EXPECT_EQ(q.best_iter, 5);
  opt.warm_iters = -1;
  EXPECT_THROW(run_psp(w, nullptr, real, opt, &warm), Error);
}

TEST(Psp, WithOktRotationAndSoftThreshold) {
  const MatrixRM w = structured_weights(128, 256, 20);
  OktOptions oo;
  oo.iters = 8;
  OktResult okt = learn_okt(w, nullptr, oo);
  ASSERT_TRUE(okt.transform);
  for (auto prox : {PspOptions::Prox::Truncated, PspOptions::Prox::SoftThreshold}) {
    PspOptions opt;
    opt.rank = 8;
    opt.prox = prox;
    PspResult p = run_psp(w, okt.transform.get(), xnor_row_binarizer(), opt);
    EXPECT_LE(p.error, p.residual[0]);
    EXPECT_LT(p.error, 0.9 * p.residual[0]);
    EXPECT_NEAR(reconstruction_error(w, p, okt.transform.get()), p.error, 1e-4);
    // Rotated plain binarization beats unrotated plain binarization here.
    EXPECT_LT(p.residual[0], std::sqrt(binarization_error(w)));
  }
  PspOptions fixed;
  fixed.rank = 8;
  fixed.prox = PspOptions::Prox::SoftThreshold;
  fixed.soft_lambda = 1e6f;  // shrinks everything: A·B = 0, plain binarization
  PspResult z = run_psp(w, nullptr, xnor_row_binarizer(), fixed);
  EXPECT_NEAR(z.error, z.residual[0], 1e-9);
}

TEST(Psp, LargeShapeUsesRandomizedSvd) {
  const MatrixRM w = structured_weights(520, 600, 30);
  PspOptions opt;
  opt.rank = 16;
  opt.iters = 4;
  PspResult p = run_psp(w, nullptr, xnor_row_binarizer(), opt);
  EXPECT_LT(p.error, 0.8 * p.residual[0]);
  EXPECT_NEAR(reconstruction_error(w, p, nullptr), p.error, 1e-4);
}

TEST(Psp, BadInput) {
  const MatrixRM w = gaussian(8, 12, 1);
  PspOptions opt;
  opt.rank = 9;
  EXPECT_THROW(run_psp(w, nullptr, xnor_row_binarizer(), opt), Error);
  opt.rank = 2;
  EXPECT_THROW(run_psp(MatrixRM(0, 12), nullptr, xnor_row_binarizer(), opt), Error);
  MatrixRM bad = w;
  bad(3, 4) = NAN;
  EXPECT_THROW(run_psp(bad, nullptr, xnor_row_binarizer(), opt), Error);
  opt.iters = 0;
  EXPECT_THROW(run_psp(w, nullptr, xnor_row_binarizer(), opt), Error);
  opt.iters = 3;
  const auto wrong_t = make_kronecker(MatrixRM::Identity(2, 2), MatrixRM::Identity(5, 5));
  const KroneckerTransform& wrong = *wrong_t;
  EXPECT_THROW(run_psp(w, &wrong, xnor_row_binarizer(), opt), Error);
  Binarizer shrink = [](const MatrixRM& x) { return MatrixRM(x.topRows(1)); };
  EXPECT_THROW(run_psp(w, nullptr, shrink, opt), Error);
  EXPECT_DOUBLE_EQ(psp_storage_bits(2048, 5632, 16), 16.0 * 16 * (2048 + 5632));
  opt.rank = 0;
  PspResult p0 = run_psp(w, nullptr, xnor_row_binarizer(), opt);
  EXPECT_EQ(p0.a.cols(), 0);
  EXPECT_NEAR(p0.error, std::sqrt(binarization_error(w)), 1e-5);
}
