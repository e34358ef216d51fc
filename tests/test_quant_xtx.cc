#include <gtest/gtest.h>

#include "core/error.h"
#include "quant/xtx.h"
#include "quant_testing.h"

using namespace bwla;

TEST(Xtx, StreamingEqualsBatchProduct) {
  const long n = 1000, dim = 96;
  MatrixRM x = test::correlated_x(n, dim, 3);
  MatrixD ref = test::gram(x);
  XtxAccumulator acc((int)dim);
  // uneven pieces, including one larger than a chunk and an empty one
  const long pieces[] = {1, 0, 37, 300, 500, 162};
  long off = 0;
  for (long p : pieces) {
    acc.add(x.data() + off * dim, p);
    off += p;
  }
  ASSERT_EQ(off, n);
  EXPECT_EQ(acc.count(), n);
  const MatrixD& got = acc.xtx();
  EXPECT_LT((got - ref).norm() / ref.norm(), 1e-6);
  EXPECT_EQ((got - got.transpose()).norm(), 0.0);
  // a second call is stable
  EXPECT_EQ((acc.xtx() - got).norm(), 0.0);
}

// Wider inputs (the fold runs over OpenMP threads from 256 columns on).
TEST(Xtx, WideEqualsBatchProduct) {
  for (long dim : {300L, 700L}) {
    const long n = 1500;
    MatrixRM x = test::correlated_x(n, dim, 5);
    MatrixD ref = test::gram(x);
    XtxAccumulator acc((int)dim);
    acc.add(x.data(), 600);
    acc.add(x.data() + 600 * dim, n - 600);
    const MatrixD& got = acc.xtx();
    EXPECT_LT((got - ref).norm() / ref.norm(), 1e-6) << dim;
    EXPECT_EQ((got - got.transpose()).norm(), 0.0) << dim;
  }
}

TEST(Xtx, KnownSmallAnswer) {
  // x1 = (1, 2), x2 = (3, -1): XᵀX = [[10, -1], [-1, 5]]
  const float x[] = {1, 2, 3, -1};
  XtxAccumulator acc(2);
  acc.add(x, 2);
  EXPECT_DOUBLE_EQ(acc.xtx()(0, 0), 10);
  EXPECT_DOUBLE_EQ(acc.xtx()(0, 1), -1);
  EXPECT_DOUBLE_EQ(acc.xtx()(1, 0), -1);
  EXPECT_DOUBLE_EQ(acc.xtx()(1, 1), 5);
  acc.reset();
  EXPECT_EQ(acc.count(), 0);
  EXPECT_EQ(acc.xtx().norm(), 0.0);
}

TEST(Xtx, RejectsBadInput) {
  EXPECT_THROW(XtxAccumulator(0), Error);
  XtxAccumulator acc(2);
  const float bad[] = {1, NAN};
  EXPECT_THROW(acc.add(bad, 1), Error);
  EXPECT_THROW(acc.add(bad, -1), Error);
}
