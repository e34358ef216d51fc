// par_sgemm_nt: OpenMP column slices of single-threaded
// OpenBLAS must give the plain product, for every thread count, odd shapes,
// leading dimensions wider than the matrix, and alpha/beta.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/blas_par.h"
#include "core/rng.h"
#include "core/threads.h"

namespace bwla {
namespace {

std::vector<float> randn(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = (float)r.normal();
  return v;
}

class BlasPar : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { set_num_threads(GetParam()); }
  void TearDown() override { set_num_threads(0); }
};

TEST_P(BlasPar, SgemmNtMatchesNaive) {
  struct Shape { int n, out, in; };
  for (Shape s : {Shape{1, 7, 5}, Shape{3, 64, 33}, Shape{17, 193, 130}, Shape{40, 300, 257},
                  Shape{129, 1000, 96}}) {
    const int ldx = s.in + 3, ldw = s.in + 5, ldy = s.out + 2;
    auto x = randn((size_t)s.n * ldx, 1), w = randn((size_t)s.out * ldw, 2);
    auto y = randn((size_t)s.n * ldy, 3), y0 = y;
    const float alpha = 0.75f, beta = -0.5f;
    par_sgemm_nt(s.n, s.out, s.in, alpha, x.data(), ldx, w.data(), ldw, beta, y.data(), ldy);
    double worst = 0;
    for (int t = 0; t < s.n; ++t) {
      for (int o = 0; o < s.out; ++o) {
        double acc = 0;
        for (int k = 0; k < s.in; ++k) acc += (double)x[(size_t)t * ldx + k] * w[(size_t)o * ldw + k];
        const double want = alpha * acc + beta * y0[(size_t)t * ldy + o];
        worst = std::max(worst, std::fabs(want - y[(size_t)t * ldy + o]) / (1 + std::fabs(want)));
      }
      // Padding between rows of y is left alone.
      for (int o = s.out; o < ldy && t + 1 < s.n; ++o)
        ASSERT_EQ(y[(size_t)t * ldy + o], y0[(size_t)t * ldy + o]) << "t " << t << " o " << o;
    }
    EXPECT_LT(worst, 1e-4) << s.n << "x" << s.out << "x" << s.in << " threads " << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, BlasPar, ::testing::Values(1, 2, 3));

}  // namespace
}  // namespace bwla

// Guards nest and may be held by several threads at once (linears quantized
// side by side): BLAS stays single-threaded until the last one ends.
TEST(BlasSingleThreaded, NestedAndConcurrentGuardsCount) {
  using bwla::BlasSingleThreaded;
  EXPECT_EQ(BlasSingleThreaded::depth(), 0);
  {
    BlasSingleThreaded outer;
    EXPECT_EQ(BlasSingleThreaded::depth(), 1);
#pragma omp parallel num_threads(3)
    {
      BlasSingleThreaded inner;
      EXPECT_GE(BlasSingleThreaded::depth(), 2);
#pragma omp barrier
    }
    EXPECT_EQ(BlasSingleThreaded::depth(), 1);
  }
  EXPECT_EQ(BlasSingleThreaded::depth(), 0);
}
