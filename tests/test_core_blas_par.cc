// par_sgemm_nt / par_ssyrk_upper: OpenMP pieces of single-threaded OpenBLAS
// must give the plain product, for every thread count, odd shapes, leading
// dimensions wider than the matrix, and alpha/beta; and the same bits at every
// thread count (pieces are cut by shape only).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <mutex>
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
                  Shape{129, 1000, 96}, Shape{300, 200, 70}}) {
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


// Row-split (n >= 256) and column-split shapes, and one below the split threshold.
struct Shape { int n, out, in; };
const Shape kDetShapes[] = {{1, 576, 576}, {7, 1000, 300}, {64, 576, 576}, {255, 300, 200},
                            {300, 172, 64}, {1000, 300, 257}, {4096, 64, 64}};

std::vector<float> sgemm_bits(const Shape& s) {
  auto x = randn((size_t)s.n * s.in, 1), w = randn((size_t)s.out * s.in, 2);
  std::vector<float> y = randn((size_t)s.n * s.out, 3);
  par_sgemm_nt(s.n, s.out, s.in, 0.5f, x.data(), s.in, w.data(), s.in, 0.25f, y.data(), s.out);
  return y;
}

std::vector<float> syrk_bits(int dim, int n, int ldx) {
  auto x = randn((size_t)n * ldx, 4);
  std::vector<float> c((size_t)dim * dim, -7.0f);
  par_ssyrk_upper(dim, n, x.data(), ldx, c.data(), dim);
  return c;
}

TEST_P(BlasPar, SgemmNtSameBitsAsOneThread) {
  for (const Shape& s : kDetShapes) {
    set_num_threads(1);
    const auto want = sgemm_bits(s);
    set_num_threads(GetParam());
    EXPECT_EQ(sgemm_bits(s), want) << s.n << "x" << s.out << "x" << s.in << " threads " << GetParam();
  }
}

TEST_P(BlasPar, SyrkUpperMatchesNaiveAndOneThread) {
  struct S { int dim, n, ldx; };
  for (S s : {S{5, 3, 5}, S{64, 1024, 64}, S{172, 1024, 180}, S{300, 777, 301}, S{576, 1024, 576}}) {
    set_num_threads(1);
    const auto want = syrk_bits(s.dim, s.n, s.ldx);
    set_num_threads(GetParam());
    const auto got = syrk_bits(s.dim, s.n, s.ldx);
    EXPECT_EQ(got, want) << s.dim << "x" << s.n << " threads " << GetParam();
    auto x = randn((size_t)s.n * s.ldx, 4);
    double worst = 0;
    for (int i = 0; i < s.dim; ++i) {
      for (int j = 0; j < s.dim; ++j) {
        const float v = got[(size_t)i * s.dim + j];
        if (j < i) {  // strict lower triangle untouched
          ASSERT_EQ(v, -7.0f) << i << "," << j;
          continue;
        }
        double acc = 0;
        for (int t = 0; t < s.n; ++t) acc += (double)x[(size_t)t * s.ldx + i] * x[(size_t)t * s.ldx + j];
        worst = std::max(worst, std::fabs(acc - v) / (1 + std::fabs(acc)));
      }
    }
    EXPECT_LT(worst, 1e-4) << s.dim << "x" << s.n;
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, BlasPar, ::testing::Values(1, 2, 3));

}  // namespace
}  // namespace bwla

// Piece boundaries depend on (total, chunks, align) only, cover [0, total)
// once, and are aligned.
TEST(ForFixedChunks, BoundariesCoverOnceAligned) {
  for (int threads : {1, 2, 3}) {
    bwla::set_num_threads(threads);
    for (long total : {1L, 15L, 16L, 17L, 576L, 1000L}) {
      for (long chunks : {1L, 3L, 4L, 8L}) {
        std::vector<int> hits(total, 0);
        std::vector<std::pair<long, long>> pieces;
        std::mutex mu;
        bwla::for_fixed_chunks(total, chunks, 16, [&](long lo, long hi) {
          std::lock_guard<std::mutex> lock(mu);
          pieces.emplace_back(lo, hi);
          for (long i = lo; i < hi; ++i) ++hits[i];
        });
        for (long i = 0; i < total; ++i) ASSERT_EQ(hits[i], 1) << total << "/" << chunks;
        for (auto [lo, hi] : pieces) {
          EXPECT_EQ(lo % 16, 0);
          EXPECT_TRUE(hi % 16 == 0 || hi == total);
        }
      }
    }
  }
  bwla::set_num_threads(0);
}

TEST(FixedChunkCount, ShapeOnlyAndEvenShares) {
  EXPECT_EQ(bwla::fixed_chunk_count(4096, 1L << 10, 128, 16), 1);  // too little work
  EXPECT_EQ(bwla::fixed_chunk_count(4096, 1L << 30, 128, 16), 32);
  EXPECT_EQ(bwla::fixed_chunk_count(576, 1L << 30, 128, 16), 8);   // 5 rounded up to 8
  EXPECT_EQ(bwla::fixed_chunk_count(40, 1L << 30, 128, 16), 2);    // at least 16 units each
}
