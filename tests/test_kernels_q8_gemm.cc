// Int8-weight × fp32-activation GEMM (the packed model's 8-bit head): every ISA
// against a double reference on random shapes, tails and misaligned inputs;
// per-row quantization bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/q8_gemm.h"
#include "kernels_test_util.h"

using namespace bwla;
using bwla::test::available_isas;
using bwla::test::IsaGuard;
using bwla::test::random_floats;

TEST(Q8Quantize, RowsRoundTripWithinHalfAStepAndUseTheFullRange) {
  Rng rng(5);
  const int rows = 7, cols = 37;
  auto w = random_floats(rng, (size_t)rows * cols, -2.0f, 2.0f);
  for (int j = 0; j < cols; ++j) w[3 * cols + j] = 0.0f;  // an all-zero row
  std::vector<int8_t> q((size_t)rows * cols);
  std::vector<float> s(rows);
  q8_quantize_rows(w.data(), rows, cols, q.data(), s.data());
  for (int i = 0; i < rows; ++i) {
    int maxq = 0;
    for (int j = 0; j < cols; ++j) {
      const size_t k = (size_t)i * cols + j;
      EXPECT_LE(std::fabs(w[k] - s[i] * q[k]), 0.5f * s[i] * (1 + 1e-6f)) << i << "," << j;
      maxq = std::max(maxq, std::abs((int)q[k]));
    }
    if (i == 3) {
      EXPECT_EQ(s[i], 1.0f);
      EXPECT_EQ(maxq, 0);
    } else {
      EXPECT_EQ(maxq, 127) << i;
    }
  }
  w[5] = NAN;
  EXPECT_THROW(q8_quantize_rows(w.data(), rows, cols, q.data(), s.data()), Error);
}

TEST(Q8Gemm, MatchesDoubleReferenceEveryIsa) {
  IsaGuard guard;
  Rng rng(17);
  struct S { int tokens, rows, cols, pad; };
  for (S s : {S{1, 1, 1, 0}, S{1, 33, 17, 3}, S{2, 70, 64, 0}, S{3, 65, 100, 5}, S{4, 9, 15, 1},
              S{5, 130, 257, 0}, S{9, 40, 2048, 0}, S{1, 300, 576, 64}, S{6, 3, 7, 9},
              S{1, 203, 100, 0}, S{1, 70000, 1, 0}}) {  // decode: 4 streams + leftover rows
    for (int off : {0, 1}) {
      const size_t stride = (size_t)s.cols + s.pad;
      std::vector<int8_t> wq(stride * s.rows + off);
      for (auto& v : wq) v = (int8_t)((int)rng.uniformf(-127.99f, 127.99f));
      auto sc = random_floats(rng, s.rows, 0.001f, 0.1f);
      auto xb = random_floats(rng, (size_t)s.tokens * s.cols + off, -3.0f, 3.0f);
      const float* x = xb.data() + off;
      Q8Matrix m{s.rows, s.cols, stride, wq.data() + off, sc.data()};
      std::vector<double> ref((size_t)s.tokens * s.rows), mag(ref.size());
      for (int t = 0; t < s.tokens; ++t)
        for (int i = 0; i < s.rows; ++i) {
          double a = 0, b = 0;
          for (int j = 0; j < s.cols; ++j) {
            const double p = (double)m.w[(size_t)i * stride + j] * x[(size_t)t * s.cols + j];
            a += p;
            b += std::fabs(p);
          }
          ref[(size_t)t * s.rows + i] = a * sc[i];
          mag[(size_t)t * s.rows + i] = b * sc[i];
        }
      for (Isa isa : available_isas()) {
        set_active_isa(isa);
        std::vector<float> y(ref.size() + 1, 12345.0f);
        q8_gemm(m, x, s.tokens, y.data());
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-30)
              << isa_name(isa) << " t=" << s.tokens << " rows=" << s.rows << " cols=" << s.cols
              << " off=" << off << " i=" << i;
        EXPECT_EQ(y.back(), 12345.0f) << "wrote past y";
      }
    }
  }
}

TEST(Q8Gemm, RejectsBadShapes) {
  std::vector<int8_t> w(16);
  float sc = 1, x[16] = {}, y[4];
  EXPECT_THROW(q8_gemm(Q8Matrix{2, 8, 4, w.data(), &sc}, x, 1, y), Error);  // stride < cols
  EXPECT_THROW(q8_gemm(Q8Matrix{0, 8, 8, w.data(), &sc}, x, 1, y), Error);
}
