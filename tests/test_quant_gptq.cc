#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "quant/weight_quant.h"
#include "quant_testing.h"

using namespace bwla;

namespace {
struct Layer {
  MatrixRM w, x;
  MatrixD s;
};
Layer make_layer(long out, long in, long n, uint64_t seed) {
  Layer l;
  l.w = test::gaussian(out, in, seed, 0.02);
  l.x = test::correlated_x(n, in, seed + 100);
  l.s = test::gram(l.x);
  return l;
}
WeightQuantResult run(const Layer& l, const std::string& m, int bits, int gs = 0) {
  WeightQuantOptions o;
  o.method = m;
  o.wbits = bits;
  o.group_size = gs;
  return quantize_weight(l.w, &l.s, l.x.rows(), o);
}
}  // namespace

TEST(Hessian, UpperCholeskyOfInverse) {
  Layer l = make_layer(4, 40, 200, 1);
  PreparedHessian hp = prepare_hessian(l.s, 200, 0.01, true, "t");
  // UᵀU = (H + λI)⁻¹ with H = 2S/N
  MatrixD h = l.s * (2.0 / 200);
  h.diagonal().array() += hp.lambda;
  EXPECT_NEAR(hp.lambda, 0.01 * (l.s * (2.0 / 200)).diagonal().mean(), 1e-9);
  MatrixD u = hp.u.cast<double>();
  MatrixD prod = u.transpose() * u * h;
  EXPECT_LT((prod - MatrixD::Identity(40, 40)).norm(), 1e-4);
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j < i; ++j) EXPECT_EQ(hp.u(i, j), 0.f);
  EXPECT_EQ(hp.retries, 0);
}

TEST(Hessian, RankDeficientAndDeadColumns) {
  // 10 tokens in 64 dims (rank 10) and two dead channels: must not crash.
  MatrixRM x = test::gaussian(10, 64, 2);
  x.col(5).setZero();
  x.col(40).setZero();
  MatrixD s = test::gram(x);
  PreparedHessian hp = prepare_hessian(s, 10, 0.01, false, "t");
  EXPECT_EQ(hp.dead[5], 1);
  EXPECT_EQ(hp.dead[40], 1);
  EXPECT_EQ(hp.dead[6], 0);
  EXPECT_TRUE(hp.u.allFinite());
  MatrixRM w = test::gaussian(16, 64, 3);
  for (int bits : {1, 2, 4}) {
    WeightQuantOptions o;
    o.method = "gptq";
    o.wbits = bits;
    auto r = quantize_weight(w, &s, 10, o);
    EXPECT_TRUE(r.w_hat.allFinite());
  }
  // zero damping on a singular H: raises damping instead of failing
  PreparedHessian hp0 = prepare_hessian(s, 10, 0.0, false, "t");
  EXPECT_TRUE(hp0.u.allFinite());
}

TEST(Hessian, IndefiniteRaisesDampingThenSucceeds) {
  // Not a Gram matrix: eigenvalues 3 and -1 (H = 2S/N = S for N = 2).
  MatrixD s(2, 2);
  s << 1, 2, 2, 1;
  PreparedHessian hp = prepare_hessian(s, 2, 0.01, false, "t");
  EXPECT_GT(hp.retries, 0);
  EXPECT_GT(hp.lambda, 1.0);  // needs λ > 1 to be positive definite
  MatrixD h = s;
  h.diagonal().array() += hp.lambda;
  MatrixD u = hp.u.cast<double>();
  EXPECT_LT((u.transpose() * u * h - MatrixD::Identity(2, 2)).norm(), 1e-5);
  // a hopeless matrix (huge negative eigenvalue, zero damping base) errors out
  MatrixD bad(2, 2);
  bad << 1e-12, 1, 1, 1e-12;
  EXPECT_THROW(prepare_hessian(bad, 2, 1e-9, false, "t"), Error);
}

TEST(Hessian, LayerOutputErrorMatchesDirect) {
  Layer l = make_layer(8, 32, 100, 4);
  MatrixRM wh = l.w * 0.9f;
  const double direct = ((l.w - wh).cast<double>() * l.x.cast<double>().transpose()).squaredNorm();
  EXPECT_NEAR(layer_output_error(l.w, wh, l.s), direct, 1e-9 * direct);
}

TEST(Gptq, RtnKnownAnswer) {
  // row [0, 1, 2, 3] at 2 bits: grid min 0, scale 1 -> exact; [0, 0.4, 3]: 0.4 -> 0
  MatrixRM w(2, 4);
  w << 0, 1, 2, 3, 0, 0.4f, 3, 3;
  MatrixRM q = rtn_quantize(w, 2, 0);
  EXPECT_EQ((q.row(0) - w.row(0)).norm(), 0.f);
  EXPECT_FLOAT_EQ(q(1, 1), 0.f);
  EXPECT_FLOAT_EQ(q(1, 2), 3.f);
}

TEST(Gptq, EightBitCloseToRtn) {
  Layer l = make_layer(64, 256, 1024, 5);
  auto g = run(l, "gptq", 8), r = run(l, "rtn", 8);
  const double eg = test::rel_out_err(l.w, g.w_hat, l.x), er = test::rel_out_err(l.w, r.w_hat, l.x);
  EXPECT_LT(eg, 0.01);
  EXPECT_LT(er, 0.01);
  // weights barely move relative to their size
  EXPECT_LT((g.w_hat - l.w).norm() / l.w.norm(), 0.02);
  EXPECT_LE(eg, er * 1.05);
}

TEST(Gptq, BeatsRtnOnOutputErrorAt2To4Bits) {
  Layer l = make_layer(64, 256, 1024, 6);
  for (int bits : {2, 3, 4}) {
    for (int gs : {0, 64}) {
      auto g = run(l, "gptq", bits, gs), r = run(l, "rtn", bits, gs);
      const double eg = layer_output_error(l.w, g.w_hat, l.s);
      const double er = layer_output_error(l.w, r.w_hat, l.s);
      EXPECT_LT(eg, er) << "bits " << bits << " gs " << gs;
      // GPTQ outputs lie on a (2^b)-level grid per row/group
      EXPECT_NEAR(g.storage_bits / l.w.size(), bits + 32.0 / (gs ? gs : 256), 1e-9);
    }
  }
}

TEST(Gptq, OneBitUsesRowSignGridAndBeatsXnor) {
  Layer l = make_layer(32, 256, 1024, 7);
  auto g = run(l, "gptq", 1), s = run(l, "rtn-sign", 1);
  for (long i = 0; i < g.w_hat.rows(); ++i) {
    const float lo = g.w_hat.row(i).minCoeff(), hi = g.w_hat.row(i).maxCoeff();
    for (long j = 0; j < g.w_hat.cols(); ++j) {
      const float v = g.w_hat(i, j);
      EXPECT_TRUE(v == lo || v == hi);
    }
  }
  EXPECT_LT(layer_output_error(l.w, g.w_hat, l.s), layer_output_error(l.w, s.w_hat, l.s));
  EXPECT_NEAR(g.bits_per_weight(), 1.0 + 32.0 / 256, 1e-9);
}

TEST(Gptq, IdentityHessianEqualsRtn) {
  // With H = I there is no cross-column feedback: GPTQ == RTN exactly.
  MatrixRM w = test::gaussian(16, 128, 8);
  PreparedHessian hp = identity_hessian(128, false);
  MatrixRM g = gptq_quantize(w, hp, 3, 32, 128);
  MatrixRM r = rtn_quantize(w, 3, 32);
  EXPECT_LT((g - r).cwiseAbs().maxCoeff(), 1e-6f);
}

TEST(WeightQuant, Validation) {
  MatrixRM w = test::gaussian(4, 8, 9);
  MatrixD s = MatrixD::Identity(8, 8);
  WeightQuantOptions o;
  o.method = "nope";
  try {
    quantize_weight(w, &s, 10, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("arb-rc"), std::string::npos);  // lists valid ones
  }
  o.method = "rtn";
  o.wbits = 5;
  EXPECT_THROW(quantize_weight(w, &s, 10, o), Error);
  o.method = "gptq";
  o.wbits = 4;
  EXPECT_THROW(quantize_weight(w, nullptr, 0, o), Error);  // needs XᵀX
  MatrixD s_bad = MatrixD::Identity(7, 7);
  EXPECT_THROW(quantize_weight(w, &s_bad, 10, o), Error);
  MatrixRM wn = w;
  wn(1, 2) = NAN;
  EXPECT_THROW(quantize_weight(wn, &s, 10, o), Error);
  MatrixD sn = s;
  sn(0, 0) = INFINITY;
  EXPECT_THROW(quantize_weight(w, &sn, 10, o), Error);
  EXPECT_EQ(weight_methods().size(), 7u);
}
