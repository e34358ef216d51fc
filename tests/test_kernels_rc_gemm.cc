// ARB-RC kernels (row and column scales, kernels/rc_gemm.h): every ISA against
// a double-precision sum of the definition ŵ_ij·x̂_j, on odd shapes: a partial
// last word and block, blocks without salient columns, rows without sparse
// entries, one and several tokens, and the threaded path.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/dispatch.h"
#include "kernels/rc_gemm.h"
#include "kernels_test_util.h"

using namespace bwla;
using bwla::test::available_isas;
using bwla::test::IsaGuard;
using bwla::test::random_floats;

namespace {

RcMatrix random_rc(Rng& rng, int rows, int cols, int block_cols, int max_sal, double p_sparse,
                   bool unit_c = false) {
  RcMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.words = (cols + 63) / 64;
  m.block_cols = block_cols;
  m.blocks = (cols + block_cols - 1) / block_cols;
  m.sign.resize((size_t)rows * m.words);
  m.sparse.resize((size_t)rows * m.words);
  m.salient.resize(m.words);
  for (int b = 0; b < m.blocks; ++b) {
    const int j0 = b * block_cols, n = std::min(cols, j0 + block_cols) - j0;
    const int k = b == 1 ? 0 : (int)(rng.uniform() * (std::min(max_sal, n) + 1));  // block 1: none
    for (int t = 0; t < k; ++t) {
      const int j = j0 + (int)(rng.uniform() * n) % n;
      m.salient[j >> 6] |= 1ull << (j & 63);
    }
  }
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      const uint64_t bit = 1ull << (j & 63);
      if (rng.uniform() < 0.5) m.sign[(size_t)i * m.words + (j >> 6)] |= bit;
      if (i % 5 != 2 && !m.is_salient(j) && rng.uniform() < p_sparse)  // rows 2, 7, …: no sparse entry
        m.sparse[(size_t)i * m.words + (j >> 6)] |= bit;
    }
  m.c = unit_c ? std::vector<float>((size_t)kRcPlanes * cols, 1.0f)
               : random_floats(rng, (size_t)kRcPlanes * cols, 0.3f, 2.0f);
  m.index_salient();
  EXPECT_EQ(m.unit_c, unit_c);
  m.sign2.resize((size_t)rows * std::max(1, m.words2));
  for (int i = 0; i < rows; ++i)
    for (int t = 0; t < m.nsal; ++t)
      if (rng.uniform() < 0.5) m.sign2[(size_t)i * m.words2 + (t >> 6)] |= 1ull << (t & 63);
  m.a = random_floats(rng, (size_t)kRcPlanes * rows * m.blocks, 0.01f, 0.2f);
  m.mu = random_floats(rng, (size_t)kRcGroups * rows * m.blocks, -0.05f, 0.05f);
  return m;
}

}  // namespace

TEST(RcGemm, EveryIsaMatchesTheDefinition) {
  IsaGuard guard;
  Rng rng(41);
  struct S { int tokens, rows, cols, block, max_sal; double sparse; bool unit_c; };
  for (S s : {S{1, 1, 1, 64, 1, 0.3, false}, S{3, 37, 200, 64, 8, 0.3, false},
              S{2, 70, 128, 128, 16, 0.0, true}, S{1, 33, 300, 128, 16, 0.5, false},
              S{5, 19, 257, 192, 30, 0.2, true}, S{1, 300, 1024, 128, 16, 0.25, false},
              S{1, 300, 1024, 128, 16, 0.25, true}, S{4, 130, 700, 128, 16, 0.25, false}}) {
    RcMatrix m = random_rc(rng, s.rows, s.cols, s.block, s.max_sal, s.sparse, s.unit_c);
    const auto x = random_floats(rng, (size_t)s.tokens * s.cols, -3.0f, 3.0f);
    std::vector<double> ref((size_t)s.tokens * s.rows), mag(ref.size());
    for (int t = 0; t < s.tokens; ++t)
      for (int i = 0; i < s.rows; ++i)
        for (int j = 0; j < s.cols; ++j) {
          const double v = (double)m.weight(i, j) * x[(size_t)t * s.cols + j];
          ref[(size_t)t * s.rows + i] += v;
          mag[(size_t)t * s.rows + i] += std::fabs(v);
        }
    RcActs a;
    rc_prepare(m, x.data(), s.tokens, a);
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      ASSERT_EQ(kernels().isa, isa);
      std::vector<float> y(ref.size(), NAN);
      rc_gemm(m, a, y.data());
      for (size_t k = 0; k < y.size(); ++k)
        ASSERT_NEAR(y[k], ref[k], 2e-6 * mag[k] + 1e-6)
            << isa_name(isa) << " shape " << s.tokens << "x" << s.rows << "x" << s.cols << " block "
            << s.block << " entry " << k;
    }
  }
}

// The prepared sums feed the kernels' closed form: a wrong block sum or a
// salient column missed in the index would move every row of that block.
TEST(RcGemm, PreparedActivationsAreTheBlockSums) {
  Rng rng(43);
  RcMatrix m = random_rc(rng, 4, 300, 128, 16, 0.3);
  const auto x = random_floats(rng, 2 * 300, -1.0f, 1.0f);
  RcActs a;
  rc_prepare(m, x.data(), 2, a);
  ASSERT_EQ(a.stride, 320);
  for (int t = 0; t < 2; ++t) {
    for (int j = 300; j < 320; ++j) EXPECT_EQ(a.x[(size_t)t * 320 + j], 0.0f);
    for (int b = 0; b < m.blocks; ++b) {
      double ub = 0, us = 0;
      for (int j = b * 128; j < std::min(300, (b + 1) * 128); ++j) {
        ub += x[(size_t)t * 300 + j];
        if (m.is_salient(j)) us += x[(size_t)t * 300 + j];
      }
      EXPECT_NEAR(a.ublk[(size_t)t * m.blocks + b], ub, 1e-5);
      EXPECT_NEAR(a.usal[(size_t)t * m.blocks + b], us, 1e-5);
    }
  }
  int n = 0;
  for (int j = 0; j < 300; ++j) n += m.is_salient(j);
  EXPECT_EQ(m.nsal, n);
  EXPECT_EQ(m.sal_start.back(), n);
}
