// 4-bit group-scaled weights × per-group int8 activations (the packed model's
// `q4` head): quantization bounds and layout, and every ISA (AVX-512 with and
// without VNNI) against a double reference of the stated formula on random
// shapes, partial groups and partial SIMD steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"
#include "kernels/q4_gemm.h"
#include "kernels_test_util.h"

using namespace bwla;
using bwla::test::available_isas;
using bwla::test::IsaGuard;
using bwla::test::random_floats;

namespace {
int nibble(const uint8_t* w, int cols, int row, int j) {
  const uint8_t b = w[(size_t)row * q4_row_bytes(cols) + (j / 32) * 16 + (j % 16)];
  return (j % 32) < 16 ? (b & 15) : (b >> 4);
}
}  // namespace

TEST(Q4Quantize, GroupsRoundToTheirScaleAndBeatTheMaxMappedScale) {
  Rng rng(3);
  const int rows = 5, cols = 77;  // 3 groups, the last holding 13 columns
  auto w = random_floats(rng, (size_t)rows * cols, -2.0f, 2.0f);
  for (int j = 32; j < 64; ++j) w[2 * cols + j] = 0.0f;  // an all-zero group
  w[4 * cols + 40] = 5.0f;                                  // a positive outlier
  std::vector<uint8_t> q(rows * q4_row_bytes(cols), 0xEE);
  std::vector<uint16_t> s(rows * q4_groups(cols));
  q4_quantize_rows(w.data(), rows, cols, q.data(), s.data());
  Q4Matrix m{rows, cols, q.data(), s.data()};
  std::vector<float> back(cols);
  int searched = 0;
  for (int i = 0; i < rows; ++i) {
    q4_dequantize_row(m, i, back.data());
    for (int g = 0; g < q4_groups(cols); ++g) {
      const float d = f16_to_f32(s[(size_t)i * q4_groups(cols) + g]);
      const int j1 = std::min(cols, g * 32 + 32);
      float big = 0.0f;
      double err = 0, err_max_mapped = 0;
      for (int j = g * 32; j < j1; ++j) {
        const float v = w[(size_t)i * cols + j];
        if (std::fabs(v) > std::fabs(big)) big = v;
        err += (double)(v - back[j]) * (v - back[j]);
      }
      if (i == 2 && g == 1) {
        EXPECT_EQ(d, 0.0f);
        for (int j = 32; j < 64; ++j) EXPECT_EQ(back[j], 0.0f);
        continue;
      }
      ASSERT_NE(d, 0.0f);
      // Q4_0's choice, largest magnitude at −8: the search never does worse.
      const float d0 = f16_to_f32(f32_to_f16(-big / 8.0f));
      for (int j = g * 32; j < j1; ++j) {
        const float v = w[(size_t)i * cols + j];
        const float r = d0 * (std::clamp(std::nearbyint(v / d0), -8.0f, 7.0f));
        err_max_mapped += (double)(v - r) * (v - r);
        // Each value is its own rounding on the chosen scale (clamped to the 16 levels).
        const int qv = nibble(q.data(), cols, i, j);
        EXPECT_EQ(qv, (int)std::clamp(std::nearbyint(v / d) + 8.0f, 0.0f, 15.0f)) << i << "," << j;
        if (qv > 0 && qv < 15) EXPECT_LE(std::fabs(v - back[j]), 0.5f * std::fabs(d) * 1.0001f);
      }
      EXPECT_LE(err, err_max_mapped * (1 + 1e-9)) << "row " << i << " group " << g;
      searched += err < err_max_mapped * (1 - 1e-3);
    }
    for (int j = cols; j < q4_groups(cols) * 32; ++j)
      EXPECT_EQ(nibble(q.data(), cols, i, j), 8) << "padding column " << j;
  }
  EXPECT_GT(searched, 0) << "the scale search never beat the max-mapped scale";
  w[7] = NAN;
  EXPECT_THROW(q4_quantize_rows(w.data(), rows, cols, q.data(), s.data()), Error);
}

TEST(Q4Quantize, ActivationsPerGroupWithinHalfAStep) {
  Rng rng(4);
  const int tokens = 3, cols = 70;
  auto x = random_floats(rng, (size_t)tokens * cols, -3.0f, 3.0f);
  for (int j = 64; j < 70; ++j) x[cols + j] = 0.0f;  // token 1's last group is zero
  x[2 * cols + 5] = 40.0f;                           // an outlier only in group 0
  Q4Acts a;
  q4_quantize_acts(x.data(), tokens, cols, a);
  ASSERT_EQ(a.groups, 3);
  ASSERT_EQ(a.q.size(), (size_t)tokens * 96);
  for (int t = 0; t < tokens; ++t)
    for (int j = 0; j < 96; ++j) {
      const int g = j / 32;
      const float s = a.scale[(size_t)t * 3 + g];
      const int8_t v = a.q[(size_t)t * 96 + j];
      if (j >= cols) {
        EXPECT_EQ(v, 0);
        continue;
      }
      EXPECT_LE(std::fabs(x[(size_t)t * cols + j] - s * v), 0.5f * s * (1 + 1e-5f) + 1e-30f);
    }
  EXPECT_EQ(a.scale[1 * 3 + 2], 0.0f);
  EXPECT_NEAR(a.scale[2 * 3 + 0], 40.0f / 127, 1e-6);
  EXPECT_LT(a.scale[2 * 3 + 1], 3.0f / 127 + 1e-6);  // group 1 keeps its own, finer scale
  x[3] = INFINITY;
  EXPECT_THROW(q4_quantize_acts(x.data(), tokens, cols, a), Error);
}

TEST(Q4Gemm, MatchesDoubleReferenceEveryIsa) {
  IsaGuard guard;
  Rng rng(23);
  struct S { int tokens, rows, cols; };
  // cols: one partial group, whole SIMD steps, partial AVX2 / AVX-512 steps.
  for (S s : {S{1, 1, 1}, S{1, 33, 17}, S{2, 70, 64}, S{3, 65, 100}, S{1, 9, 32}, S{5, 130, 257},
              S{2, 40, 2048}, S{1, 300, 576}, S{4, 3, 96}, S{1, 203, 160}, S{1, 5000, 64},
              S{7, 17, 224}}) {
    const int G = q4_groups(s.cols);
    std::vector<uint8_t> wq(s.rows * q4_row_bytes(s.cols));
    std::vector<uint16_t> ws((size_t)s.rows * G);
    for (auto& v : wq) v = (uint8_t)rng.uniformf(0.0f, 255.99f);
    for (auto& v : ws) v = f32_to_f16(rng.uniformf(-0.1f, 0.1f));
    auto x = random_floats(rng, (size_t)s.tokens * s.cols, -3.0f, 3.0f);
    Q4Matrix m{s.rows, s.cols, wq.data(), ws.data()};
    Q4Acts a;
    q4_quantize_acts(x.data(), s.tokens, s.cols, a);
    std::vector<double> ref((size_t)s.tokens * s.rows), mag(ref.size());
    for (int t = 0; t < s.tokens; ++t)
      for (int i = 0; i < s.rows; ++i) {
        double acc = 0, abs = 0;
        for (int g = 0; g < G; ++g) {
          long d = 0, da = 0;
          for (int j = g * 32; j < g * 32 + 32; ++j) {
            // Padding columns hold random nibbles here; their activations are 0.
            const long p = (long)(nibble(wq.data(), s.cols, i, j) - 8) * a.q[(size_t)t * G * 32 + j];
            d += p;
            da += std::labs(p);
          }
          const double sc = (double)f16_to_f32(ws[(size_t)i * G + g]) * a.scale[(size_t)t * G + g];
          acc += d * sc;
          abs += da * std::fabs(sc);
        }
        ref[(size_t)t * s.rows + i] = acc;
        mag[(size_t)t * s.rows + i] = abs;
      }
    auto check = [&](const char* what, const std::vector<float>& y) {
      for (size_t i = 0; i < ref.size(); ++i)
        ASSERT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-30)
            << what << " t=" << s.tokens << " rows=" << s.rows << " cols=" << s.cols << " i=" << i;
      EXPECT_EQ(y.back(), 12345.0f) << what << ": wrote past y";
    };
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      std::vector<float> y(ref.size() + 1, 12345.0f);
      q4_gemm(m, x.data(), s.tokens, y.data());
      check(isa_name(isa), y);
    }
    if (best_isa() == Isa::Avx512) {
      std::vector<float> y(ref.size() + 1, 12345.0f);
      detail::q4_rows_avx512_bw(m, a, 0, s.rows, y.data());
      check("avx512bw", y);
      if (cpu_features().avx512vnni) {
        std::fill(y.begin(), y.end() - 1, 0.0f);
        detail::q4_rows_avx512_vnni(m, a, 0, s.rows, y.data());
        check("avx512vnni", y);
      }
    }
  }
}

TEST(Q4Gemm, QuantizedHeadStaysCloseToTheFloatProduct) {
  // End to end: fp32 weights → q4 → product with fp32 activations; the error is
  // the two roundings, a few percent of the output's scale, not garbage.
  Rng rng(31);
  const int rows = 256, cols = 576;
  auto w = random_floats(rng, (size_t)rows * cols, -1.0f, 1.0f);
  auto x = random_floats(rng, cols, -1.0f, 1.0f);
  std::vector<uint8_t> q(rows * q4_row_bytes(cols));
  std::vector<uint16_t> s((size_t)rows * q4_groups(cols));
  q4_quantize_rows(w.data(), rows, cols, q.data(), s.data());
  std::vector<float> y(rows);
  q4_gemm(Q4Matrix{rows, cols, q.data(), s.data()}, x.data(), 1, y.data());
  double err = 0, norm = 0;
  for (int i = 0; i < rows; ++i) {
    double r = 0;
    for (int j = 0; j < cols; ++j) r += (double)w[(size_t)i * cols + j] * x[j];
    err += (y[i] - r) * (y[i] - r);
    norm += r * r;
  }
  EXPECT_LT(std::sqrt(err / norm), 0.12);
  EXPECT_GT(std::sqrt(err / norm), 1e-4);  // it is quantized
}
