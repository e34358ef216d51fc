#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/act_quant.h"
#include "quant/act_quant.h"
#include "quant_testing.h"

using namespace bwla;

TEST(ActQuant, Bits16IsPassThrough) {
  MatrixRM x = test::gaussian(7, 33, 1);
  MatrixRM y = x;
  fake_quant_acts(y.data(), y.rows(), (int)y.cols(), 16, 0.7f);
  EXPECT_EQ((x - y).norm(), 0.0f);
}

TEST(ActQuant, OutputsOnGridWithinHalfStep) {
  for (int bits : {4, 6, 8}) {
    MatrixRM x = test::gaussian(20, 200, 2 + bits);
    x.row(3).array() += 5.0f;  // all-positive row: asymmetric grid
    MatrixRM y = x;
    fake_quant_acts(y.data(), y.rows(), (int)y.cols(), bits, 1.0f);
    for (long i = 0; i < x.rows(); ++i) {
      std::set<float> vals(y.row(i).data(), y.row(i).data() + y.cols());
      EXPECT_LE((long)vals.size(), 1L << bits);
      const float lo = x.row(i).minCoeff(), hi = x.row(i).maxCoeff();
      const float scale = (hi - lo) / (float)((1 << bits) - 1);
      for (long j = 0; j < x.cols(); ++j)
        EXPECT_LE(std::fabs(x(i, j) - y(i, j)), 0.5f * scale * 1.001f + 1e-6f) << bits;
      // values are integer multiples of the scale
      for (float v : vals) {
        const float k = v / scale;
        EXPECT_NEAR(k, std::nearbyint(k), 1e-3f);
      }
    }
  }
}

TEST(ActQuant, ClippingSaturatesAtClippedRange) {
  // x = [-1, 0, ..., 4]: clip 0.5 -> range [-0.5, 2], the 4 maps near 2.
  float x[6] = {-1.f, 0.f, 1.f, 2.f, 3.f, 4.f};
  fake_quant_acts(x, 1, 6, 8, 0.5f);
  const float scale = 2.5f / 255.f;
  EXPECT_NEAR(x[5], 2.0f, scale);
  EXPECT_NEAR(x[0], -0.5f, scale);
  EXPECT_NEAR(x[2], 1.0f, scale / 2 + 1e-6f);
}

TEST(ActQuant, ConstantRowsUnchanged) {
  float x[8] = {0, 0, 0, 0, 3.5f, 3.5f, 3.5f, 3.5f};
  fake_quant_acts(x, 2, 4, 4, 0.8f);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(x[j], 0.0f);
  for (int j = 4; j < 8; ++j) EXPECT_EQ(x[j], 3.5f);
}

TEST(ActQuant, RejectsBadArgs) {
  float x[4] = {1, 2, 3, 4};
  EXPECT_THROW(fake_quant_acts(x, 1, 4, 4, 0.0f), Error);
  EXPECT_THROW(fake_quant_acts(x, 1, 4, 4, 1.5f), Error);
  EXPECT_THROW(fake_quant_acts(x, 1, 4, 1, 1.0f), Error);
  EXPECT_THROW(fake_quant_acts(x, 1, 0, 4, 1.0f), Error);
}

TEST(ActQuant, ClipSearchNoOutliersPicksOne) {
  // Uniform tokens: clipping only adds saturation error.
  Rng rng(5);
  const long n = 256, dim = 128;
  MatrixRM x(n, dim);
  for (long i = 0; i < n; ++i)
    for (long j = 0; j < dim; ++j) x(i, j) = rng.uniformf(-1.f, 1.f);
  MatrixRM w = test::gaussian(64, dim, 6);
  for (int bits : {4, 6, 8}) EXPECT_EQ(search_act_clip(x.data(), n, dim, w, bits), 1.0f) << bits;
  EXPECT_EQ(search_act_clip(x.data(), n, dim, w, 16), 1.0f);
}

TEST(ActQuant, ClipSearchHeavyTailsPicksLessThanOne) {
  // Laplace tokens: the rare large values stretch the per-token range.
  Rng rng(7);
  const long n = 256, dim = 128;
  MatrixRM x(n, dim);
  for (long i = 0; i < n; ++i)
    for (long j = 0; j < dim; ++j) {
      const double u = rng.uniform() + 1e-12;
      x(i, j) = (float)((rng.uniform() < 0.5 ? -1.0 : 1.0) * -std::log(u));
    }
  MatrixRM w = test::gaussian(64, dim, 8);
  const float c = search_act_clip(x.data(), n, dim, w, 4);
  EXPECT_LT(c, 1.0f);
  // the chosen clip really is the best on the grid, and better than 1.0
  const double e_c = act_quant_output_error(x.data(), n, dim, w, 4, c);
  const double e_1 = act_quant_output_error(x.data(), n, dim, w, 4, 1.0f);
  EXPECT_LT(e_c, e_1);
  for (float g : default_act_clip_grid())
    EXPECT_LE(e_c, act_quant_output_error(x.data(), n, dim, w, 4, g));
}

// The clip search's errors equal the direct ‖E·Wᵀ‖² for both of its ways of
// computing them (direct when out <= dim, through WᵀW when out > dim), and it
// picks the argmin of the direct errors.
TEST(ActQuant, ClipSearchErrorsMatchTheDirectProductForNarrowAndWideOutputs) {
  Rng rng(11);
  const long n = 200;
  const int dim = 96;
  MatrixRM x(n, dim);
  for (long i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) {
      const double u = rng.uniform() + 1e-12;
      x(i, j) = (float)((rng.uniform() < 0.5 ? -1.0 : 1.0) * -std::log(u)) + (j == 5 ? 8.f : 0.f);
    }
  const auto grid = default_act_clip_grid();
  for (int out : {40, 96, 257}) {
    MatrixRM w = test::gaussian(out, dim, 12 + out);
    for (int bits : {4, 6}) {
      const auto errs = act_quant_output_errors(x.data(), n, dim, w, bits, grid);
      ASSERT_EQ(errs.size(), grid.size());
      size_t best = 0;
      std::vector<double> direct;
      for (size_t i = 0; i < grid.size(); ++i) {
        direct.push_back(act_quant_output_error(x.data(), n, dim, w, bits, grid[i]));
        EXPECT_NEAR(errs[i], direct[i], 1e-5 * direct[i]) << out << " " << bits << " " << grid[i];
        if (direct[i] < direct[best]) best = i;
      }
      const float c = search_act_clip(x.data(), n, dim, w, bits);
      EXPECT_EQ(c, grid[best]) << out << " " << bits;
    }
  }
  EXPECT_THROW(act_quant_output_errors(x.data(), n, dim + 1, test::gaussian(300, dim, 1), 4, grid), Error);
}

// Fake quantization is dequantize(quantize(x)) of the packed path's codes, bit
// for bit, on ordinary, constant, tiny and huge rows (before: a constant row
// of 0.3 dequantized to 0.0 in the kernel and stayed 0.3 in fake quant).
TEST(ActQuant, FakeQuantEqualsKernelQuantizeDequantizeBitForBit) {
  const int cols = 37;
  std::vector<std::vector<float>> rows;
  for (float c : {0.3f, -0.3f, 0.0f, 3.5f, -7.25f, 1e-30f, -1e-40f, 3e38f, -3e38f})
    rows.push_back(std::vector<float>(cols, c));
  Rng rng(11);
  for (double scale : {1.0, 1e-3, 1e-30, 1e-38, 1e-43, 1e20, 1e37, 6e37}) {
    std::vector<float> r(cols);
    for (auto& v : r) v = (float)(scale * rng.normal());
    rows.push_back(r);
    for (auto& v : r) v = (float)(scale * std::fabs(rng.normal()));  // one-signed
    rows.push_back(r);
  }
  std::vector<float> mixed(cols, 0.0f);
  mixed[3] = 3.4e38f;
  mixed[5] = -3.4e38f;  // hi − lo overflows
  rows.push_back(mixed);
  std::vector<float> x;
  for (auto& r : rows) x.insert(x.end(), r.begin(), r.end());
  const int n = (int)rows.size();
  for (int bits : {4, 6, 8}) {
    for (float clip : {1.0f, 0.8f}) {
      std::vector<float> fake = x, deq(x.size());
      fake_quant_acts(fake.data(), n, cols, bits, clip);
      QuantActs a;
      quantize_acts(x.data(), n, cols, bits, clip, a);
      dequantize_acts(a, deq.data());
      for (size_t i = 0; i < x.size(); ++i) {
        // (The last row spans the whole float range: its grid's end overflows.)
        if ((int)(i / cols) < n - 1) {
          ASSERT_TRUE(std::isfinite(deq[i])) << "row " << i / cols << " bits " << bits;
        }
        ASSERT_EQ(std::memcmp(&fake[i], &deq[i], 4), 0)
            << "row " << i / cols << " col " << i % cols << " bits " << bits << " clip " << clip
            << ": fake " << fake[i] << " vs kernel " << deq[i] << " (x " << x[i] << ")";
      }
    }
  }
  // Constant rows are exact, whatever the clip ratio.
  std::vector<float> c(cols, 0.3f);
  fake_quant_acts(c.data(), 1, cols, 6, 0.7f);
  for (float v : c) EXPECT_EQ(v, 0.3f);
}
