#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "quant/binarize.h"
#include "quant/hessian.h"
#include "quant/sign_refine.h"
#include "quant/weight_quant.h"
#include "quant_testing.h"

using namespace bwla;

namespace {

// Per (row, block) XNOR fit: the one-plane starting point.
MatrixRM xnor_blocks(const MatrixRM& w, int bs) {
  MatrixRM out(w.rows(), w.cols());
  for (long i = 0; i < w.rows(); ++i)
    for (long c0 = 0; c0 < w.cols(); c0 += bs) {
      const int n = (int)std::min<long>(bs, w.cols() - c0);
      const BinaryFit f = xnor_fit(&w(i, c0), n);
      binary_apply(&w(i, c0), n, f, &out(i, c0));
    }
  return out;
}

double metric(const MatrixRM& w, const MatrixRM& wh, const MatrixRM& h) {
  const MatrixD e = (w - wh).cast<double>();
  return (e * h.cast<double>() * e.transpose()).trace();
}

struct Case {
  MatrixRM w, x, h;
  MatrixD s;
};
Case make_case(long out, long in, uint64_t seed) {
  Case c;
  c.w = test::gaussian(out, in, seed, 0.02);
  c.x = test::correlated_x(400, in, seed + 9);
  c.s = test::gram(c.x);
  c.h = prepare_hessian(c.s, c.x.rows(), 0.01, true, "t").h;
  return c;
}

}  // namespace

TEST(SignRefine, LowersTheLayerMetricAndReportsItExactly) {
  const Case c = make_case(24, 100, 3);  // 100 columns: last block of 36 is short
  MatrixRM wh = xnor_blocks(c.w, 64);
  const double before = metric(c.w, wh, c.h);
  const SignRefineStats st = refine_signs(c.w, wh, c.h, 64, 3);
  const double after = metric(c.w, wh, c.h);
  EXPECT_NEAR(st.f_before, before, 1e-3 * before);
  EXPECT_NEAR(st.f_after, after, 1e-3 * before);
  EXPECT_LT(after, 0.9 * before);  // on correlated inputs the sweep gains a lot
  EXPECT_GT(st.flips, 0);
  // Still one plane: at most two values per (row, block).
  for (long i = 0; i < wh.rows(); ++i)
    for (long c0 = 0; c0 < wh.cols(); c0 += 64) {
      std::set<float> v;
      for (long j = c0; j < std::min<long>(c0 + 64, wh.cols()); ++j) v.insert(wh(i, j));
      EXPECT_LE(v.size(), 2u) << "row " << i << " block " << c0 / 64;
    }
}

TEST(SignRefine, EndsAtALocalOptimumOfSingleFlips) {
  const Case c = make_case(8, 48, 5);
  MatrixRM wh = xnor_blocks(c.w, 48);
  refine_signs(c.w, wh, c.h, 0, 6, 50);
  const double f = metric(c.w, wh, c.h);
  // The last step was a scale refit; a flip may still pay a little after it,
  // but never much: flipping any single sign gains at most 1 % of the row metric.
  for (long i = 0; i < wh.rows(); ++i) {
    const float hi = wh.row(i).maxCoeff(), lo = wh.row(i).minCoeff();
    for (long j = 0; j < wh.cols(); ++j) {
      MatrixRM t = wh;
      t(i, j) = wh(i, j) == hi ? lo : hi;
      EXPECT_GT(metric(c.w, t, c.h), f - 0.01 * f) << i << "," << j;
    }
  }
}

TEST(SignRefine, SameBitsAtAnyThreadCount) {
  const Case c = make_case(40, 128, 7);
  MatrixRM a = xnor_blocks(c.w, 64), b = a;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  refine_signs(c.w, a, c.h, 64, 2);
  omp_set_num_threads(2);
  refine_signs(c.w, b, c.h, 64, 2);
  omp_set_num_threads(saved);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * a.size()));
}

TEST(SignRefine, RefusesNonOnePlaneInputAndBadShapes) {
  const Case c = make_case(4, 32, 9);
  MatrixRM wh = xnor_blocks(c.w, 32);
  wh(0, 3) = 123.f;  // a third value in row 0
  EXPECT_THROW(refine_signs(c.w, wh, c.h, 0, 1), Error);
  MatrixRM small(4, 16);
  EXPECT_THROW(refine_signs(c.w, small, c.h, 0, 1), Error);
}

TEST(SignRefine, ImprovesOnePlaneQuantizersThroughQuantizeWeight) {
  const Case c = make_case(32, 256, 11);
  for (const char* m : {"arb-x", "gptq"}) {
    WeightQuantOptions o;
    o.method = m;
    o.groups = false;
    const WeightQuantResult plain = quantize_weight(c.w, &c.s, c.x.rows(), o);
    o.sign_refine = 2;
    const WeightQuantResult ref = quantize_weight(c.w, &c.s, c.x.rows(), o);
    EXPECT_LT(test::rel_out_err(c.w, ref.w_hat, c.x), test::rel_out_err(c.w, plain.w_hat, c.x))
        << m;
    EXPECT_EQ(ref.storage_bits, plain.storage_bits) << m;  // same layout, same bits
  }
  WeightQuantOptions g;
  g.method = "arb-x";
  g.sign_refine = 1;  // column groups on: not a one-plane layout
  EXPECT_THROW(quantize_weight(c.w, &c.s, c.x.rows(), g), Error);
}
