#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "quant/dist_stats.h"
#include "quant/okt.h"
#include "quant/psp.h"

using namespace bwla;

namespace {

// Gaussian weights with a few outlier input columns scaled ×10 (single bell
// per row, heavy columns: the realistic LLM case).
MatrixRM outlier_weights(int out, int in, double outlier_frac, uint64_t seed) {
  Rng rng(seed);
  MatrixRM w(out, in);
  for (int i = 0; i < out; ++i)
    for (int j = 0; j < in; ++j) w(i, j) = (float)(0.02 * rng.normal());
  const int n_out = std::max(1, (int)std::lround(outlier_frac * in));
  for (int k = 0; k < n_out; ++k) w.col((int)rng.below(in)) *= 10.0f;
  return w;
}

MatrixRM explicit_kron(const MatrixRM& r1, const MatrixRM& r2) {
  const long n1 = r1.rows(), n2 = r2.rows();
  MatrixRM k(n1 * n2, n1 * n2);
  for (long a = 0; a < n1; ++a)
    for (long b = 0; b < n1; ++b) k.block(a * n2, b * n2, n2, n2) = r1(a, b) * r2;
  return k;
}

double orth_error(const MatrixRM& r) {
  return (r.transpose() * r - MatrixRM::Identity(r.rows(), r.cols())).cwiseAbs().maxCoeff();
}

}  // namespace

TEST(Okt, FactorsOrthogonalAndKroneckerExplicit) {
  MatrixRM w = outlier_weights(64, 96, 0.02, 1);  // 96 = 8 x 12
  OktOptions opt;
  opt.iters = 5;
  OktResult r = learn_okt(w, nullptr, opt);
  ASSERT_TRUE(r.transform);
  EXPECT_EQ(r.n1, 8);
  EXPECT_EQ(r.n2, 12);
  EXPECT_LT(orth_error(kron_r1(*r.transform)), 1e-5);
  EXPECT_LT(orth_error(kron_r2(*r.transform)), 1e-5);
  // The map v -> R1ᵀ·V·R2 (row-major V) is multiplication by (R1 ⊗ R2)ᵀ.
  const MatrixRM k = explicit_kron(kron_r1(*r.transform), kron_r2(*r.transform));
  EXPECT_LT((explicit_matrix(*r.transform) - k.transpose()).cwiseAbs().maxCoeff(), 1e-5);
  Rng rng(3);
  MatrixRM x(5, 96);
  for (long i = 0; i < x.size(); ++i) x.data()[i] = (float)rng.normal();
  MatrixRM xr = x;
  r.transform->apply_rows(xr.data(), xr.rows());
  EXPECT_LT((xr - x * k).cwiseAbs().maxCoeff(), 1e-4);
  // Rotation must not be the identity (the EM actually moved it).
  EXPECT_GT((kron_r1(*r.transform) - MatrixRM::Identity(8, 8)).norm(), 1e-2);
}

TEST(Okt, OutputInvariance) {
  MatrixRM w = outlier_weights(48, 64, 0.03, 2);
  OktOptions opt;
  opt.iters = 4;
  opt.mstep = OktOptions::MStep::Cayley;
  OktResult r = learn_okt(w, nullptr, opt);
  ASSERT_TRUE(r.transform);
  Rng rng(4);
  MatrixRM x(7, 64);
  for (long i = 0; i < x.size(); ++i) x.data()[i] = (float)rng.normal();
  MatrixRM wr = w, xr = x;
  apply_to_weight(*r.transform, wr);
  r.transform->apply_rows(xr.data(), xr.rows());
  const MatrixRM y = x * w.transpose(), yr = xr * wr.transpose();
  EXPECT_LT((y - yr).cwiseAbs().maxCoeff(), 1e-5 * (1.0 + y.cwiseAbs().maxCoeff()));
}

// For fixed targets each Procrustes step is optimal, and the guard keeps J
// monotone; hard targets (κ = 0) make it monotone without the guard too.
TEST(Okt, ProcrustesObjectiveNonIncreasing) {
  MatrixRM w = outlier_weights(128, 256, 0.01, 5);
  for (float kappa : {0.0f, 0.25f}) {
    OktOptions opt;
    opt.iters = 10;
    opt.kappa = kappa;
    opt.monotone_guard = kappa > 0;
    OktResult r = learn_okt(w, nullptr, opt);
    ASSERT_GE(r.objective.size(), 5u);
    ASSERT_LE(r.objective.size(), 11u);
    for (size_t k = 1; k < r.objective.size(); ++k)
      EXPECT_LE(r.objective[k], r.objective[k - 1] * (1 + 1e-6)) << "kappa " << kappa << " it " << k;
    EXPECT_LT(r.objective.back(), 0.95 * r.objective.front());
    if (kappa == 0) {
      EXPECT_EQ(r.rejected_steps, 0);
    }
  }
}

// Rows that are exactly ±1 in a planted rotated basis (W_i = Q1·S_i·Q2ᵀ, i.e.
// R1 = Q1, R2 = Q2 gives Z_i = S_i and J = 0). A wrong transpose convention
// in either M-step could not reach J ≈ 0. The problem has local minima, so the
// best of four Hadamard-initialised starts must find it.
TEST(Okt, ProcrustesRecoversPlantedRotation) {
  const int n1 = 4, n2 = 8, out = 200;
  const MatrixRM q1 = random_orthogonal_init(n1, 11);
  Rng rng(13);
  MatrixRM g(n2, n2);
  for (long i = 0; i < g.size(); ++i) g.data()[i] = (float)rng.normal();
  Eigen::HouseholderQR<MatrixRM> qr(g);
  const MatrixRM q2 = qr.householderQ();
  MatrixRM w(out, n1 * n2);
  for (int i = 0; i < out; ++i) {
    MatrixRM s(n1, n2);
    for (long k = 0; k < s.size(); ++k) s.data()[k] = (rng.next_u64() & 1) ? 1.0f : -1.0f;
    MatrixRM wr = q1 * s * q2.transpose();
    w.row(i) = Eigen::Map<Eigen::RowVectorXf>(wr.data(), n1 * n2);
  }
  OktOptions opt;
  opt.iters = 60;
  opt.hadamard_init = true;
  double best = 1e9;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    opt.seed = seed;
    OktResult r = learn_okt(w, nullptr, opt);
    EXPECT_GT(r.objective.front(), 0.1);
    best = std::min(best, r.objective.back());
  }
  EXPECT_LT(best, 1e-4);
}

TEST(Okt, LowersBinarizationErrorAndRaisesBimodality) {
  MatrixRM w = outlier_weights(256, 512, 0.01, 7);
  const double e0 = binarization_error(w);
  const DistStats s0 = row_dist_stats(w);
  for (auto ms : {OktOptions::MStep::Procrustes, OktOptions::MStep::Cayley}) {
    OktOptions opt;
    opt.iters = 10;
    opt.mstep = ms;
    OktResult r = learn_okt(w, nullptr, opt);
    ASSERT_TRUE(r.transform);
    MatrixRM wr = w;
    apply_to_weight(*r.transform, wr);
    const double e1 = binarization_error(wr);
    const DistStats s1 = row_dist_stats(wr);
    EXPECT_LT(e1, 0.8 * e0);
    EXPECT_GT(s1.bimodality, s0.bimodality + 0.05);
    EXPECT_LT(s1.kurtosis, s0.kurtosis);
  }
}

TEST(Okt, HadamardInitAndActivationTerm) {
  MatrixRM w = outlier_weights(64, 128, 0.02, 8);
  Rng rng(9);
  MatrixRM x(96, 128);
  for (long i = 0; i < x.size(); ++i) x.data()[i] = (float)rng.normal();
  for (int c : {3, 77}) x.col(c) *= 30.0f;  // activation outlier channels
  OktOptions opt;
  opt.iters = 6;
  opt.hadamard_init = true;
  opt.act_weight = 1.0f;
  OktResult r = learn_okt(w, &x, opt);
  ASSERT_TRUE(r.transform);
  EXPECT_LT(orth_error(kron_r1(*r.transform)), 1e-5);
  EXPECT_LT(orth_error(kron_r2(*r.transform)), 1e-5);
  for (size_t k = 1; k < r.objective.size(); ++k) EXPECT_LE(r.objective[k], r.objective[k - 1]);
  MatrixRM xr = x;
  r.transform->apply_rows(xr.data(), xr.rows());
  EXPECT_LT(activation_stats(xr).max_over_rms, 0.5 * activation_stats(x).max_over_rms);
  // From the identity start, the activation term must shrink the tails more
  // than the weight-only objective does.
  opt.hadamard_init = false;
  opt.act_weight = 20.0f;
  opt.act_clip = 2.5f;
  OktResult with_act = learn_okt(w, &x, opt);
  opt.act_weight = 0.0f;
  OktResult weight_only = learn_okt(w, &x, opt);
  MatrixRM xa = x, xw = x;
  with_act.transform->apply_rows(xa.data(), xa.rows());
  weight_only.transform->apply_rows(xw.data(), xw.rows());
  std::printf("act max/rms: raw %.3f weight-only %.3f with act term %.3f\n",
              activation_stats(x).max_over_rms, activation_stats(xw).max_over_rms,
              activation_stats(xa).max_over_rms);
  EXPECT_LT(activation_stats(xa).max_over_rms, 0.8 * activation_stats(xw).max_over_rms);
  // Activation term does not destroy the weight objective.
  MatrixRM wr = w;
  apply_to_weight(*r.transform, wr);
  EXPECT_LT(binarization_error(wr), binarization_error(w));
}

TEST(Okt, BadInputAndFallback) {
  OktOptions opt;
  EXPECT_THROW(learn_okt(MatrixRM(0, 16), nullptr, opt), Error);
  MatrixRM w = MatrixRM::Ones(4, 16);
  w(1, 2) = std::nanf("");
  EXPECT_THROW(learn_okt(w, nullptr, opt), Error);
  w(1, 2) = 0.5f;
  MatrixRM x = MatrixRM::Ones(3, 15);
  opt.act_weight = 1.0f;
  EXPECT_THROW(learn_okt(w, &x, opt), Error);
  opt.act_weight = 0.0f;
  // Values whose squares overflow float: non-finite objective -> identity.
  MatrixRM huge = outlier_weights(8, 16, 0.1, 1) * 1e22f;
  OktResult r = learn_okt(huge, nullptr, opt);
  EXPECT_TRUE(r.fell_back);
  ASSERT_TRUE(r.transform);
  EXPECT_LT((explicit_matrix(*r.transform) - MatrixRM::Identity(16, 16)).norm(), 1e-6);
  // Prime width above the factor limit: no transform, fell_back.
  OktOptions small = opt;
  small.max_factor = 8;
  OktResult p = learn_okt(outlier_weights(4, 13, 0.1, 2), nullptr, small);
  EXPECT_TRUE(p.fell_back);
  EXPECT_FALSE(p.transform);
  // Prime width within the limit: a single full rotation (n1 = 1).
  OktResult q = learn_okt(outlier_weights(16, 13, 0.1, 2), nullptr, opt);
  ASSERT_TRUE(q.transform);
  EXPECT_EQ(q.n1, 1);
  EXPECT_EQ(q.n2, 13);
  EXPECT_LT(orth_error(kron_r2(*q.transform)), 1e-5);
}

// Measurements for the report (run with --gtest_also_run_disabled_tests).
TEST(OktMeasure, DISABLED_Report) {
  MatrixRM w = outlier_weights(256, 512, 0.01, 7);
  const DistStats s0 = row_dist_stats(w);
  std::printf("256x512: binerr %.4f kurt %.3f bimod %.3f near %.3f\n", binarization_error(w),
              s0.kurtosis, s0.bimodality, s0.near_centre_mass);
  std::unique_ptr<KroneckerTransform> best;
  for (auto ms : {OktOptions::MStep::Procrustes, OktOptions::MStep::Cayley})
    for (float kappa : {0.0f, 0.25f})
      for (bool had : {false, true}) {
        OktOptions opt;
        opt.mstep = ms;
        opt.kappa = kappa;
        opt.hadamard_init = had;
        OktResult r = learn_okt(w, nullptr, opt);
        MatrixRM wr = w;
        apply_to_weight(*r.transform, wr);
        const DistStats s = row_dist_stats(wr);
        std::printf("%s kappa %.2f had %d: binerr %.4f kurt %.3f bimod %.3f near %.3f "
                    "J %.4f->%.4f its %zu rej %d %.2fs\n",
                    ms == OktOptions::MStep::Procrustes ? "procrustes" : "cayley    ", kappa, had,
                    binarization_error(wr), s.kurtosis, s.bimodality, s.near_centre_mass,
                    r.objective.front(), r.objective.back(), r.objective.size() - 1,
                    r.rejected_steps, r.seconds);
        if (ms == OktOptions::MStep::Procrustes && kappa > 0 && !had) best = std::move(r.transform);
      }
  for (const KroneckerTransform* rot : std::vector<const KroneckerTransform*>{nullptr, best.get()}) {
    PspOptions po;
    po.rank = 16;
    PspResult p = run_psp(w, rot, xnor_row_binarizer(), po);
    std::printf("PSP rank 16 %s: rel err plain %.4f -> %.4f (best iter %d, +%.3f bits/w)\n",
                rot ? "with OKT" : "no rot  ", p.residual.front(), p.error, p.best_iter,
                psp_storage_bits(256, 512, 16) / (256.0 * 512.0));
  }
  for (auto [o, i] : {std::pair{2048, 2048}, std::pair{5632, 2048}, std::pair{2048, 5632}})
    for (bool had : {false, true}) {
      MatrixRM big = outlier_weights(o, i, 0.01, 1);
      OktOptions opt;
      opt.hadamard_init = had;
      Timer t;
      OktResult r = learn_okt(big, nullptr, opt);
      const double sec = t.seconds();
      MatrixRM wr = big;
      apply_to_weight(*r.transform, wr);
      std::printf("%dx%d (%dx%d) had %d: %.2fs  binerr %.4f -> %.4f (its %zu)\n", o, i, r.n1,
                  r.n2, had, sec, binarization_error(big), binarization_error(wr),
                  r.objective.size() - 1);
      std::fflush(stdout);
    }
}
