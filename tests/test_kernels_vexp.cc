// Vectorized exp / SiLU gate / softmax: accuracy against double precision, the
// same bits under every ISA (random lengths and tails, misaligned), special
// values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/cpu.h"
#include "kernels/vexp.h"
#include "kernels_test_util.h"

using namespace bwla;
using bwla::test::available_isas;
using bwla::test::IsaGuard;
using bwla::test::random_floats;

namespace {
bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }
}  // namespace

TEST(Vexp, WithinTwoAndAHalfUlpOfTheTrueValueEveryIsa) {
  IsaGuard guard;
  Rng rng(7);
  std::vector<float> x = random_floats(rng, 20000, -87.0f, 88.5f);
  auto small = random_floats(rng, 5000, -1.0f, 1.0f);
  x.insert(x.end(), small.begin(), small.end());
  for (float v : {0.0f, -0.0f, 1.0f, -1.0f, 88.0f, 88.72f, -87.3f, 0.5f * 0.6931472f})
    x.push_back(v);
  for (Isa isa : available_isas()) {
    set_active_isa(isa);
    std::vector<float> y(x.size());
    vexp(x.data(), y.data(), (long)x.size());
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double t = std::exp((double)x[i]);
      worst = std::max(worst, std::fabs(y[i] - t) / t);
    }
    std::printf("%s: max relative error %.3g\n", isa_name(isa), worst);
    EXPECT_LE(worst, 2.5e-7) << isa_name(isa);
  }
}

TEST(Vexp, SameBitsUnderEveryIsaIncludingTailsAndSpecialValues) {
  IsaGuard guard;
  Rng rng(8);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (long n : {1L, 7L, 8L, 15L, 16L, 17L, 33L, 100L, 1029L}) {
    std::vector<float> buf = random_floats(rng, n + 1, -120.0f, 100.0f);
    if (n > 6) {
      buf[1] = inf, buf[2] = -inf, buf[3] = nan, buf[4] = -104.5f, buf[5] = 88.8f;
      buf[6] = 1e-30f;
    }
    const float* x = buf.data() + 1;  // misaligned
    std::vector<float> ref(n);
    detail::vexp_scalar(x, ref.data(), n);
    for (long i = 0; i < n; ++i) {
      const double t = std::exp((double)x[i]);
      if (std::isnan(x[i])) EXPECT_TRUE(std::isnan(ref[i]));
      else if (x[i] > 88.7229f) EXPECT_EQ(ref[i], inf) << x[i];
      else if (x[i] < -104.0f) EXPECT_EQ(ref[i], 0.0f) << x[i];
      else if (t > 1e-37) EXPECT_NEAR(ref[i], t, 2.5e-7 * t) << x[i];
      else EXPECT_NEAR(ref[i], t, 1e-44) << x[i];  // denormal range: absolute
    }
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      std::vector<float> y(n + 1, 7.0f);
      vexp(x, y.data(), n);
      for (long i = 0; i < n; ++i)
        ASSERT_TRUE(same_bits(y[i], ref[i]) || (std::isnan(y[i]) && std::isnan(ref[i])))
            << isa_name(isa) << " n=" << n << " x=" << x[i] << ": " << y[i] << " vs " << ref[i];
      EXPECT_EQ(y[n], 7.0f) << "wrote past the end";
      // In place.
      std::vector<float> z(x, x + n);
      vexp(z.data(), z.data(), n);
      for (long i = 0; i < n; ++i)
        ASSERT_TRUE(same_bits(z[i], ref[i]) || std::isnan(ref[i])) << isa_name(isa);
    }
  }
}

TEST(Vexp, SiluMulAndSoftmaxMatchTheirDefinitionsAndEveryIsa) {
  IsaGuard guard;
  Rng rng(9);
  for (long n : {1L, 5L, 16L, 31L, 64L, 130L, 5632L}) {
    const auto a0 = random_floats(rng, n, -12.0f, 12.0f);
    const auto b = random_floats(rng, n, -2.0f, 2.0f);
    std::vector<float> ref_silu, ref_soft;
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      std::vector<float> a = a0;
      silu_mul_vec(a.data(), b.data(), n);
      std::vector<float> s = a0;
      softmax_vec(s.data(), (int)n);
      double sum = 0;
      double mx = -1e30;
      for (long i = 0; i < n; ++i) mx = std::max(mx, (double)a0[i]);
      double z = 0;
      for (long i = 0; i < n; ++i) z += std::exp((double)a0[i] - mx);
      for (long i = 0; i < n; ++i) {
        const double g = a0[i], want = g / (1 + std::exp(-g)) * b[i];
        ASSERT_NEAR(a[i], want, 1e-6 * (std::fabs(want) + 1e-3)) << isa_name(isa) << " i=" << i;
        const double p = std::exp((double)a0[i] - mx) / z;
        ASSERT_NEAR(s[i], p, 1e-6 * p + 1e-12) << isa_name(isa) << " n=" << n << " i=" << i;
        sum += s[i];
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
      if (ref_silu.empty()) {
        ref_silu = a;
        ref_soft = s;
        continue;
      }
      for (long i = 0; i < n; ++i) {
        ASSERT_TRUE(same_bits(a[i], ref_silu[i])) << isa_name(isa) << " silu n=" << n << " i=" << i;
        ASSERT_TRUE(same_bits(s[i], ref_soft[i])) << isa_name(isa) << " softmax n=" << n << " i=" << i;
      }
    }
  }
}
