// row_gemv (single-token fp32 GEMV on plain row-major weights, e.g. the tied
// lm_head): every ISA version against a double-precision reference on odd
// shapes, strided and misaligned rows; the threaded split against one thread.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/row_gemv.h"
#include "kernels_test_util.h"

using namespace bwla;
using namespace bwla::test;

TEST(RowGemv, EveryIsaMatchesReference) {
  IsaGuard guard;
  Rng rng(29);
  for (int rows : {1, 3, 4, 5, 17, 38}) {
    for (int k : {1, 7, 15, 16, 17, 33, 576}) {
      for (int pad : {0, 3}) {
        const size_t ldw = (size_t)k + pad;
        // One extra float in front so the rows start misaligned.
        auto buf = random_floats(rng, 1 + rows * ldw, -1.0f, 1.0f);
        const float* w = buf.data() + 1;
        auto xb = random_floats(rng, k + 1, -1.0f, 1.0f);
        const float* x = xb.data() + 1;
        std::vector<double> ref(rows, 0.0), mag(rows, 0.0);
        for (int r = 0; r < rows; ++r)
          for (int j = 0; j < k; ++j) {
            ref[r] += (double)w[r * ldw + j] * x[j];
            mag[r] += std::fabs((double)w[r * ldw + j] * x[j]);
          }
        for (Isa isa : available_isas()) {
          set_active_isa(isa);
          std::vector<float> y(rows + 1, -9.0f);
          row_gemv(rows, k, w, ldw, x, y.data());
          for (int r = 0; r < rows; ++r)
            ASSERT_NEAR(y[r], ref[r], 1e-5 * mag[r] + 1e-6)
                << isa_name(isa) << " rows=" << rows << " k=" << k << " ldw=" << ldw << " r=" << r;
          ASSERT_EQ(y[rows], -9.0f) << "wrote past row " << rows;
        }
      }
    }
  }
}

TEST(RowGemv, ThreadedSplitEqualsOneThread) {
  IsaGuard guard;
  Rng rng(31);
  const int rows = 1000, k = 600;  // 1000 rows: not a multiple of the 16-row unit
  auto w = random_floats(rng, (size_t)rows * k, -1.0f, 1.0f);
  auto x = random_floats(rng, k, -1.0f, 1.0f);
  const int saved = omp_get_max_threads();
  for (Isa isa : available_isas()) {
    set_active_isa(isa);
    omp_set_num_threads(1);
    std::vector<float> one(rows), two(rows, -9.0f);
    row_gemv(rows, k, w.data(), k, x.data(), one.data());
    omp_set_num_threads(2);
    row_gemv(rows, k, w.data(), k, x.data(), two.data());
    for (int r = 0; r < rows; ++r) ASSERT_EQ(one[r], two[r]) << isa_name(isa) << " r=" << r;
  }
  omp_set_num_threads(saved);
}

TEST(RowGemv, InsideParallelRegionEachCallerGetsTheFullProduct) {
  Rng rng(37);
  const int rows = 256, k = 64;
  auto w = random_floats(rng, (size_t)rows * k, -1.0f, 1.0f);
  auto x = random_floats(rng, k, -1.0f, 1.0f);
  std::vector<float> ref(rows);
  row_gemv(rows, k, w.data(), k, x.data(), ref.data());
  std::vector<std::vector<float>> ys(4, std::vector<float>(rows, -9.0f));
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 4; ++i) row_gemv(rows, k, w.data(), k, x.data(), ys[i].data());
  for (int i = 0; i < 4; ++i)
    for (int r = 0; r < rows; ++r) ASSERT_EQ(ys[i][r], ref[r]) << "caller " << i << " row " << r;
}
