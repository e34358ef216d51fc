#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "quant/binarize.h"
#include "quant/hessian.h"
#include "quant/weight_quant.h"
#include "quant_testing.h"

using namespace bwla;

namespace {
// Rows of the form α_i·s_ij + μ_i. balanced: every row has equally many ±1.
MatrixRM sign_rows(long out, long in, bool balanced, uint64_t seed) {
  Rng rng(seed);
  MatrixRM w(out, in);
  for (long i = 0; i < out; ++i) {
    const float a = 0.01f + 0.05f * (float)rng.uniform(), mu = 0.02f * (float)rng.normal();
    for (long j = 0; j < in; ++j) {
      float s;
      if (balanced)
        s = (j % 2) ? 1.f : -1.f;
      else
        s = rng.uniform() < 0.7 ? 1.f : -1.f;
      w(i, j) = mu + a * s;
    }
  }
  return w;
}

WeightQuantResult q(const MatrixRM& w, const MatrixD* s, long n, const std::string& m,
                    bool groups = true) {
  WeightQuantOptions o;
  o.method = m;
  o.groups = groups;
  return quantize_weight(w, s, n, o);
}

// Skewed, heavy-ish tailed rows (single bell, off-centre) like LLM weights.
MatrixRM skewed(long out, long in, uint64_t seed) {
  Rng rng(seed);
  MatrixRM w(out, in);
  for (long i = 0; i < out; ++i)
    for (long j = 0; j < in; ++j) {
      const double z = rng.normal();
      w(i, j) = (float)(0.02 * (z + 0.3 * z * z * (z > 0 ? 1 : -0.2)) + 0.003);
    }
  return w;
}
}  // namespace

TEST(Binarize, XnorKnownAnswer) {
  const float v[4] = {1.f, 3.f, 1.f, 3.f};  // μ = 2, α = 1
  BinaryFit f = xnor_fit(v, 4);
  EXPECT_FLOAT_EQ(f.mu, 2.f);
  EXPECT_FLOAT_EQ(f.alpha, 1.f);
  EXPECT_FLOAT_EQ(f(0.f), 1.f);
  EXPECT_FLOAT_EQ(f(2.f), 3.f);  // ties go to +1
}

TEST(Binarize, RtnSignReproducesBalancedSignRows) {
  MatrixRM w = sign_rows(8, 64, true, 1);
  auto r = q(w, nullptr, 0, "rtn-sign");
  EXPECT_LT((r.w_hat - w).cwiseAbs().maxCoeff(), 1e-6f);
  EXPECT_DOUBLE_EQ(r.bits_per_weight(), 1.0 + 32.0 / 64);
}

TEST(Binarize, ArbReproducesUnbalancedSignRows) {
  MatrixRM w = sign_rows(8, 256, false, 2);
  // XNOR cannot (its μ is biased by the sign imbalance) ...
  auto x = q(w, nullptr, 0, "rtn-sign");
  EXPECT_GT((x.w_hat - w).cwiseAbs().maxCoeff(), 1e-3f);
  // ... ARB can, with and without group bitmaps.
  for (bool g : {false, true}) {
    auto r = q(w, nullptr, 0, "arb", g);
    EXPECT_LT((r.w_hat - w).cwiseAbs().maxCoeff(), 1e-5f) << g;
  }
  for (int i = 0; i < 8; ++i) {
    BinaryFit f = arb_fit(w.row(i).data(), 256, 30);
    EXPECT_LT(binary_sq_error(w.row(i).data(), 256, f), 1e-12);
  }
}

TEST(Binarize, ArbErrorMonotoneAndBelowXnor) {
  MatrixRM w = skewed(16, 512, 3);
  for (long i = 0; i < w.rows(); ++i) {
    std::vector<double> tr;
    arb_fit(w.row(i).data(), (int)w.cols(), 15, &tr);
    ASSERT_EQ(tr.size(), 16u);
    for (size_t k = 1; k < tr.size(); ++k) EXPECT_LE(tr[k], tr[k - 1] * (1 + 1e-6)) << k;
    EXPECT_LT(tr.back(), tr.front());
    EXPECT_NEAR(tr.front(), binary_sq_error(w.row(i).data(), (int)w.cols(),
                                            xnor_fit(w.row(i).data(), (int)w.cols())),
                1e-9);
  }
  // whole-layer: arb Frobenius error <= rtn-sign's (H = I, no groups, per block)
  auto a = q(w, nullptr, 0, "arb", false), s = q(w, nullptr, 0, "rtn-sign");
  EXPECT_LT((a.w_hat - w).norm(), (s.w_hat - w).norm());
}

TEST(Binarize, ArbRcMonotone) {
  MatrixRM w = skewed(32, 128, 4);
  // column scales matter: scale columns unevenly
  Rng rng(5);
  for (long j = 0; j < w.cols(); ++j) w.col(j) *= (float)(0.3 + 2 * rng.uniform());
  GroupIds gid = GroupIds::Constant(32, 128, 1);
  for (long i = 0; i < 32; ++i)
    for (long j = 0; j < 128; j += 3) gid(i, j) = 2;  // a second, interleaved group
  MatrixRM wh = MatrixRM::Zero(32, 128);
  std::vector<double> tr1, tr2;
  const double e1 = arb_rc_fit(w, gid, 1, 15, true, wh, &tr1);
  const double e2 = arb_rc_fit(w, gid, 2, 15, true, wh, &tr2);
  for (auto* tr : {&tr1, &tr2}) {
    for (size_t k = 1; k < tr->size(); ++k) EXPECT_LE((*tr)[k], (*tr)[k - 1] * (1 + 1e-6));
    EXPECT_LT(tr->back(), 0.9 * tr->front());  // column scales help a lot here
  }
  EXPECT_NEAR(e1 + e2, (w - wh).cast<double>().squaredNorm(), 1e-6 * (e1 + e2));
  EXPECT_NEAR(e1, tr1.back(), 1e-4 * e1);
}

class BinarizeLayer : public ::testing::Test {
 protected:
  void SetUp() override {
    w = skewed(128, 256, 11);
    x = test::correlated_x(1024, 256, 12);
    s = test::gram(x);
  }
  double err(const MatrixRM& wh) { return layer_output_error(w, wh, s); }
  WeightQuantResult run(const std::string& m, bool groups = true) {
    return q(w, &s, x.rows(), m, groups);
  }
  MatrixRM w, x;
  MatrixD s;
};

TEST_F(BinarizeLayer, BillmBeatsXnorAndCountsBits) {
  auto b = run("billm"), x1 = run("rtn-sign");
  EXPECT_LT(err(b.w_hat), err(x1.w_hat));
  EXPECT_DOUBLE_EQ(x1.bits_per_weight(), 1.0 + 32.0 / 256);
  const double pb = b.paper_bits / w.size();
  EXPECT_GT(pb, 1.0);
  EXPECT_LT(pb, 1.15);  // ≤ 16 of 128 columns carry a second plane
  // honest: + group bitmap (≈1 bit) + 7 fp16 per row per 128-column block (0.875)
  EXPECT_GT(b.bits_per_weight(), 2.6);
  EXPECT_LT(b.bits_per_weight(), 3.1);
}

TEST_F(BinarizeLayer, ArbXLowersOutputErrorVsArb) {
  for (bool g : {false, true}) {
    auto a = run("arb", g), ax = run("arb-x", g);
    EXPECT_LT(err(ax.w_hat), err(a.w_hat)) << g;
    EXPECT_DOUBLE_EQ(a.storage_bits, ax.storage_bits);
  }
  // without groups: 1 sign bit + α, μ per row per 128-column block
  EXPECT_DOUBLE_EQ(run("arb", false).bits_per_weight(), 1.0 + 32.0 / 128);
}

TEST_F(BinarizeLayer, ArbAndRcBeatXnorOnOutput) {
  const double ex = err(run("rtn-sign").w_hat);
  for (const char* m : {"arb", "arb-rc", "arb-x"}) {
    auto r = run(m);
    EXPECT_TRUE(r.w_hat.allFinite());
    EXPECT_LT(err(r.w_hat), ex) << m;
  }
}

TEST_F(BinarizeLayer, CompensationHelps) {
  // Same binarizer with H = I (no feedback) vs with the real H.
  WeightQuantOptions o;
  o.method = "billm";
  auto no_h = quantize_weight(w, nullptr, 0, o);
  auto with_h = quantize_weight(w, &s, x.rows(), o);
  EXPECT_LT(err(with_h.w_hat), err(no_h.w_hat));
}

TEST_F(BinarizeLayer, HessianCacheIsReusedAndChangesNothing) {
  WeightQuantOptions o;
  o.method = "arb-x";
  PreparedHessian cache;
  auto plain = quantize_weight(w, &s, x.rows(), o);
  auto first = quantize_weight(w, &s, x.rows(), o, &cache);
  ASSERT_EQ(cache.u.rows(), w.cols());  // filled by the first call
  const MatrixRM u0 = cache.u;
  MatrixRM w2 = w * 0.5f;  // a different weight, same statistics (as in PSP)
  auto second = quantize_weight(w2, &s, x.rows(), o, &cache);
  EXPECT_EQ(cache.u, u0);
  EXPECT_EQ(first.w_hat, plain.w_hat);
  EXPECT_EQ(second.w_hat, quantize_weight(w2, &s, x.rows(), o).w_hat);
}

TEST(Binarize, RankDeficientDeadColumnsNoCrash) {
  MatrixRM x = test::gaussian(12, 128, 20);
  x.col(7).setZero();
  MatrixD s = test::gram(x);
  MatrixRM w = skewed(16, 128, 21);
  for (const char* m : {"billm", "arb", "arb-x", "arb-rc", "gptq"}) {
    auto r = q(w, &s, 12, m);
    EXPECT_TRUE(r.w_hat.allFinite()) << m;
  }
}

// ARB-RC keeps the factors of Ŵ (what `bwla pack` stores), as do the other
// column-group layouts: they must describe
// Ŵ to fp32 rounding, with groups or without, with dead columns and with a
// last block shorter than the others; salient entries are whole columns of a
// block; no other method returns factors.
TEST(Binarize, ArbRcFactorsReproduceTheWeights) {
  MatrixRM x = test::correlated_x(512, 200, 31);
  x.col(9).setZero();  // a dead column
  const MatrixD s = test::gram(x);
  const MatrixRM w = skewed(24, 200, 32);  // blocks of 128: one full, one of 72 columns
  for (bool groups : {true, false})
    for (const MatrixD* sp : {&s, (const MatrixD*)nullptr}) {
      const auto r = q(w, sp, sp ? 512 : 0, "arb-rc", groups);
      ASSERT_TRUE(r.rc) << groups;
      const RcFactors& f = *r.rc;
      EXPECT_EQ(f.rows, 24);
      EXPECT_EQ(f.cols, 200);
      EXPECT_EQ(f.block_cols, 128);
      EXPECT_EQ(f.blocks, 2);
      const double mis = rc_mismatch(f, r.w_hat);
      EXPECT_LT(mis, 2e-6) << "groups " << groups << " H " << (sp != nullptr);
      int salient = 0, sparse = 0;
      for (int j = 0; j < f.cols; ++j) {
        const bool s0 = (f.code[j] & RcFactors::kGroupMask) == 0;
        salient += s0;
        for (int i = 0; i < f.rows; ++i) {
          const int g = f.code[(size_t)i * f.cols + j] & RcFactors::kGroupMask;
          EXPECT_EQ(g == 0, s0) << i << "," << j;
          sparse += g == 2;
        }
      }
      if (groups) {
        EXPECT_GT(salient, 0);
        EXPECT_GT(sparse, 0);
      } else {
        EXPECT_EQ(salient, 0);
        EXPECT_EQ(sparse, 0);
      }
      // A factor changed is seen: the check can fail.
      RcFactors g2 = f;
      g2.C(2, 5) *= 1.5f;
      EXPECT_GT(rc_mismatch(g2, r.w_hat), 1e-3);
    }
  // The other column-group binarizers keep theirs too (column scales 1; ArbX's
  // refitted rows included); one-plane layouts and the rest keep none.
  for (const char* m : {"billm", "arb", "arb-x"}) {
    const auto r = q(w, &s, 512, m, true);
    ASSERT_TRUE(r.rc) << m;
    EXPECT_LT(rc_mismatch(*r.rc, r.w_hat), 2e-6) << m;
    for (float c : r.rc->c) ASSERT_EQ(c, 1.0f) << m;
    if (std::string(m) != "billm") EXPECT_FALSE(q(w, &s, 512, m, false).rc) << m;
  }
  EXPECT_FALSE(q(w, &s, 512, "rtn-sign").rc);
  EXPECT_FALSE(q(w, &s, 512, "gptq").rc);
}
