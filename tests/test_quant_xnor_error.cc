#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "quant/xnor_error.h"

using namespace bwla;

namespace {
// Σω(v − v̂)² of the XNOR fit computed the obvious way (μ = mean, α = mean|v − μ|).
double direct(const std::vector<float>& v, const std::vector<float>& om, int want,
              const std::vector<uint8_t>& sel) {
  double s = 0, n = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (sel[i] == want) s += v[i], n += 1;
  if (n == 0) return 0.0;
  const double mu = s / n;
  double a = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (sel[i] == want) a += std::fabs(v[i] - mu);
  a /= n;
  double e = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (sel[i] == want) {
      const double vh = v[i] >= mu ? mu + a : mu - a;
      e += om[i] * (v[i] - vh) * (v[i] - vh);
    }
  return e;
}
}  // namespace

TEST(XnorError, WeightedErrorMatchesDirectFit) {
  Rng rng(3);
  for (int n : {1, 2, 7, 128}) {
    std::vector<float> v(n), om(n);
    std::vector<uint8_t> sel(n);
    for (int i = 0; i < n; ++i) {
      v[i] = (float)rng.normal() * 0.1f + 0.01f;
      om[i] = 0.1f + (float)rng.uniform();
      sel[i] = rng.uniform() < 0.5 ? 1 : 2;
    }
    for (uint8_t want : {1, 2}) {
      const double d = direct(v, om, want, sel);
      EXPECT_NEAR(wxnor_err(v.data(), om.data(), n, sel.data(), want), d, 1e-9 * (1 + d)) << n;
    }
    std::vector<uint8_t> all(n, 1);
    const double d = direct(v, om, 1, all);
    EXPECT_NEAR(wxnor_err(v.data(), om.data(), n), d, 1e-9 * (1 + d)) << n;
  }
}

TEST(XnorError, SortedSplitEqualsMaskedErrors) {
  Rng rng(11);
  SortedRow sr;
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + (int)rng.below(130);
    std::vector<float> v(n), om(n);
    for (int i = 0; i < n; ++i) {
      // Heavy tails, repeated values and exact ±thr hits all occur.
      v[i] = trial % 3 == 0 ? (float)((int)rng.below(9) - 4) * 0.25f
                            : (float)(rng.normal() * (rng.uniform() < 0.1 ? 5.0 : 1.0));
      om[i] = 0.05f + (float)rng.uniform();
    }
    sr.build(v.data(), om.data(), n);
    float maxabs = 0;
    for (float x : v) maxabs = std::max(maxabs, std::fabs(x));
    for (float thr : {0.0f, 0.25f, 0.5f, maxabs * 0.3f, maxabs, maxabs * 2}) {
      std::vector<uint8_t> sel(n);
      for (int i = 0; i < n; ++i) sel[i] = std::fabs(v[i]) <= thr ? 1 : 2;
      const double want = wxnor_err(v.data(), om.data(), n, sel.data(), 1) +
                          wxnor_err(v.data(), om.data(), n, sel.data(), 2);
      const double got = sr.split_err(thr);
      EXPECT_NEAR(got, want, 1e-9 * (1 + want)) << "trial " << trial << " n " << n << " thr " << thr;
    }
  }
}
