#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "quant/dist_stats.h"
#include "quant/factorize.h"

using namespace bwla;

TEST(Factorize, Balanced) {
  EXPECT_EQ(balanced_factors(2048), std::make_pair(32, 64));
  EXPECT_EQ(balanced_factors(5632), std::make_pair(64, 88));
  EXPECT_EQ(balanced_factors(4096), std::make_pair(64, 64));
  EXPECT_EQ(balanced_factors(172), std::make_pair(4, 43));
  EXPECT_EQ(balanced_factors(173), std::make_pair(1, 173));
  EXPECT_EQ(balanced_factors(1), std::make_pair(1, 1));
  EXPECT_EQ(balanced_factors(96), std::make_pair(8, 12));
  for (int m = 1; m < 3000; ++m) {
    auto [a, b] = balanced_factors(m);
    ASSERT_EQ(a * b, m);
    ASSERT_LE(a, b);
    for (int d = a + 1; (long)d * d <= m; ++d) ASSERT_NE(m % d, 0) << m;
  }
  EXPECT_THROW(balanced_factors(0), Error);
}

TEST(Factorize, OktPolicy) {
  KronFactors f = okt_factors(2048);
  EXPECT_TRUE(f.usable);
  EXPECT_FALSE(f.degenerate);
  EXPECT_TRUE(f.note.empty());
  f = okt_factors(173);
  EXPECT_TRUE(f.usable);
  EXPECT_TRUE(f.degenerate);
  EXPECT_EQ(f.n1, 1);
  f = okt_factors(1031);  // prime above the factor limit
  EXPECT_FALSE(f.usable);
  EXPECT_FALSE(f.note.empty());
  f = okt_factors(2 * 523);  // 2 x 523: usable but unbalanced
  EXPECT_TRUE(f.usable);
  EXPECT_TRUE(f.degenerate);
}

TEST(DistStats, KnownDistributions) {
  // Two-point ±1 rows: kurtosis 1, bimodality 1, all mass at the centres.
  MatrixRM two(4, 100);
  for (long i = 0; i < two.size(); ++i) two.data()[i] = (i % 2) ? 1.0f : -1.0f;
  DistStats s = row_dist_stats(two);
  EXPECT_NEAR(s.kurtosis, 1.0, 1e-9);
  EXPECT_NEAR(s.bimodality, 1.0, 1e-9);
  EXPECT_NEAR(s.near_centre_mass, 1.0, 1e-12);
  // Uniform grid on [-1, 1]: kurtosis 1.8.
  MatrixRM uni(1, 20001);
  for (long j = 0; j < uni.cols(); ++j) uni(0, j) = -1.0f + 2.0f * (float)j / 20000.0f;
  EXPECT_NEAR(row_dist_stats(uni).kurtosis, 1.8, 1e-3);
  // Activations: a token with one spike has a large max/rms.
  MatrixRM x = MatrixRM::Ones(2, 100);
  x(1, 5) = 50.0f;
  ActStats a = activation_stats(x);
  EXPECT_NEAR(a.worst_max_over_rms, 50.0 / std::sqrt((99.0 + 2500.0) / 100.0), 1e-6);
  EXPECT_GT(a.max_over_rms, 1.0);
  EXPECT_THROW(row_dist_stats(MatrixRM(0, 5)), Error);
}

TEST(DistStats, Histogram) {
  const float v[] = {-2.0f, -0.5f, 0.0f, 0.49f, 0.5f, 3.0f, NAN};
  auto h = histogram(v, 7, -1.0f, 1.0f, 4);
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0], 1);  // -2 clamped
  EXPECT_EQ(h[1], 1);  // -0.5
  EXPECT_EQ(h[2], 2);  // 0, 0.49
  EXPECT_EQ(h[3], 2);  // 0.5, 3 clamped
  EXPECT_THROW(histogram(v, 7, 1.0f, 1.0f, 4), Error);
  EXPECT_THROW(histogram(v, 7, -1.0f, 1.0f, 0), Error);
}
