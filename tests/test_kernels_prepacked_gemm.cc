// PrepackedGemm (oneDNN, weights re-laid-out once) against a double-precision
// product of the plain weights, on odd shapes and every token count the
// runtime uses (1 for decode, prefill lengths, long ppl windows).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/prepacked_gemm.h"
#include "kernels_test_util.h"

using namespace bwla;
using namespace bwla::test;

TEST(PrepackedGemm, MatchesPlainProductOnOddShapes) {
  if (!PrepackedGemm::available()) GTEST_SKIP() << "built without oneDNN";
  Rng rng(11);
  struct Shape {
    int out, in;
  };
  for (Shape s : {Shape{1, 1}, Shape{17, 33}, Shape{64, 64}, Shape{100, 129}, Shape{300, 70}}) {
    auto w = random_floats(rng, (size_t)s.out * s.in, -1.0f, 1.0f);
    PrepackedGemm g(w.data(), s.out, s.in);
    EXPECT_EQ(g.out_features(), s.out);
    EXPECT_EQ(g.in_features(), s.in);
    EXPECT_GE(g.bytes(), (size_t)s.out * s.in * 4);
    // The plain copy is not needed after construction.
    const std::vector<float> w_copy = w;
    std::fill(w.begin(), w.end(), 123.0f);
    for (int n : {1, 2, 7, 128, 130, 1, 7}) {  // repeats reuse the cached primitive
      auto x = random_floats(rng, (size_t)n * s.in, -2.0f, 2.0f);
      std::vector<float> y((size_t)n * s.out, -7.0f);
      g.forward(x.data(), n, y.data());
      for (int t = 0; t < n; ++t)
        for (int i = 0; i < s.out; ++i) {
          double ref = 0, mag = 0;
          for (int j = 0; j < s.in; ++j) {
            const double p = (double)x[(size_t)t * s.in + j] * w_copy[(size_t)i * s.in + j];
            ref += p;
            mag += std::fabs(p);
          }
          ASSERT_NEAR(y[(size_t)t * s.out + i], ref, 1e-5 * mag + 1e-6)
              << s.out << "x" << s.in << " n=" << n << " t=" << t << " i=" << i;
        }
    }
  }
}

// oneDNN does not promise thread-count-independent results; bwla's guarantee
// (docs/GUARANTEES.md) rests on its matmul splitting only the output, as
// measured on decoder shapes up to 16 threads. This checks it on odd and
// decoder-like shapes at 2 and 3 threads, bit for bit.
TEST(PrepackedGemm, ThreadCountsGiveTheSameBits) {
  if (!PrepackedGemm::available()) GTEST_SKIP() << "built without oneDNN";
  Rng rng(12);
  struct Shape {
    int out, in;
  };
  const int saved = omp_get_max_threads();
  for (Shape s : {Shape{96, 200}, Shape{576, 576}, Shape{192, 576}, Shape{300, 1536}}) {
    auto w = random_floats(rng, (size_t)s.out * s.in, -1.0f, 1.0f);
    PrepackedGemm g(w.data(), s.out, s.in);
    for (int n : {2, 7, 40, 128}) {
      auto x = random_floats(rng, (size_t)n * s.in, -1.0f, 1.0f);
      std::vector<float> y1((size_t)n * s.out), y2((size_t)n * s.out);
      omp_set_num_threads(1);
      g.forward(x.data(), n, y1.data());
      for (int t : {2, 3}) {
        omp_set_num_threads(t);
        g.forward(x.data(), n, y2.data());
        EXPECT_TRUE(y1 == y2) << s.out << "x" << s.in << " n=" << n << " threads " << t;
      }
    }
  }
  omp_set_num_threads(saved);
}

TEST(PrepackedGemm, BadShapesAreErrors) {
  if (!PrepackedGemm::available()) GTEST_SKIP() << "built without oneDNN";
  std::vector<float> w(6, 1.0f), x(3, 1.0f), y(2);
  EXPECT_THROW(PrepackedGemm(w.data(), 0, 3), Error);
  EXPECT_THROW(PrepackedGemm(nullptr, 2, 3), Error);
  PrepackedGemm g(w.data(), 2, 3);
  EXPECT_THROW(g.forward(x.data(), 0, y.data()), Error);
}

TEST(PrepackedGemm, SingleTokensUseThePanelGemv) {
  if (!PrepackedGemm::available()) GTEST_SKIP() << "built without oneDNN";
  Rng rng(14);
  // The layout oneDNN chose for every decoder shape measured (docs/RESULTS.md);
  // if a oneDNN update changes it, single tokens fall back to a 1-row matmul
  // and this test says so.
  auto w = random_floats(rng, (size_t)256 * 320, -1.0f, 1.0f);
  PrepackedGemm g(w.data(), 256, 320);
  EXPECT_TRUE(g.panel_gemv());
}
