// binary_gemm_blocked: per-(row, column-block) scales against a float
// reference, identical across ISAs and inner kernels, and a one-block case
// equal to binary_gemm.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/binary_gemm_blocked.h"
#include "kernels_test_util.h"

using namespace bwla;
using bwla::test::available_isas;
using bwla::test::IsaGuard;
using bwla::test::random_floats;

namespace {

struct Blocked {
  PackedBinary w;
  BlockScales s;
  QuantActs a;
  std::vector<float> signs;
};

Blocked make(int rows, int cols, int tokens, int bits, int block, uint64_t seed) {
  Rng rng(seed);
  Blocked u;
  u.signs.resize((size_t)rows * cols);
  for (auto& v : u.signs) v = rng.uniform() < 0.4 ? 1.0f : -1.0f;
  u.w = pack_binary(u.signs.data(), rows, cols, nullptr, nullptr);
  const int nb = (cols + block - 1) / block;
  auto alpha = random_floats(rng, (size_t)rows * nb, 0.01f, 0.2f);
  auto mu = random_floats(rng, (size_t)rows * nb, -0.05f, 0.05f);
  u.s = make_block_scales(u.w, block, alpha.data(), mu.data());
  auto x = random_floats(rng, (size_t)tokens * cols, -2.0f, 3.0f);
  quantize_acts(x.data(), tokens, cols, bits, 1.0f, u.a);
  return u;
}

std::vector<float> reference(const Blocked& u) {
  const int rows = u.w.rows, cols = u.w.cols, T = u.a.tokens;
  std::vector<float> xq((size_t)T * cols);
  dequantize_acts(u.a, xq.data());
  std::vector<float> y((size_t)T * rows);
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < rows; ++i) {
      double s = 0;
      for (int j = 0; j < cols; ++j) {
        const size_t si = (size_t)i * u.s.blocks + j / u.s.block_cols;
        s += ((double)u.s.alpha[si] * u.signs[(size_t)i * cols + j] + u.s.mu[si]) * xq[(size_t)t * cols + j];
      }
      y[(size_t)t * rows + i] = (float)s;
    }
  return y;
}

TEST(BinaryGemmBlocked, MatchesFloatReferenceAndIsIdenticalAcrossKernels) {
  IsaGuard g;
  struct C { int rows, cols, tokens, bits, block; };
  for (C c : {C{37, 172, 1, 6, 128}, C{64, 1024, 3, 8, 512}, C{50, 200, 5, 4, 64},
              C{33, 1536, 1, 6, 512}, C{40, 96, 2, 8, 64}}) {
    Blocked u = make(c.rows, c.cols, c.tokens, c.bits, c.block, c.rows * 131 + c.cols);
    const auto ref = reference(u);
    std::vector<float> first;
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      for (BinaryKernel k : {BinaryKernel::Auto, BinaryKernel::Scalar, BinaryKernel::Avx2,
                             BinaryKernel::Avx512Vnni, BinaryKernel::Avx512MaskAdd,
                             BinaryKernel::Avx512BitSerial}) {
        if (!binary_kernel_available(k)) continue;
        if (k == BinaryKernel::Avx512BitSerial && c.block % 512) continue;
        std::vector<float> y((size_t)c.tokens * c.rows, NAN);
        binary_gemm_blocked(u.w, u.s, u.a, y.data(), k);
        double scale = 0;
        for (float v : ref) scale = std::max(scale, (double)std::fabs(v));
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_NEAR(y[i], ref[i], 1e-5 * scale + 1e-6)
              << isa_name(isa) << " " << binary_kernel_name(k) << " cols " << c.cols << " i " << i;
        if (first.empty()) first = y;
        ASSERT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * 4))
            << isa_name(isa) << " " << binary_kernel_name(k) << " cols " << c.cols;
      }
    }
  }
}

TEST(BinaryGemmBlocked, OneBlockEqualsBinaryGemm) {
  Blocked u = make(48, 256, 4, 6, 256, 5);
  PackedBinary w = pack_binary(u.signs.data(), 48, 256, u.s.alpha.data(), u.s.mu.data());
  std::vector<float> a((size_t)4 * 48), b((size_t)4 * 48);
  binary_gemm(w, u.a, a.data());
  binary_gemm_blocked(u.w, u.s, u.a, b.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6 * (1 + std::fabs(a[i]))) << i;
}

TEST(BinaryGemmBlocked, ThreadsGiveIdenticalOutput) {
  Blocked u = make(300, 640, 2, 6, 128, 9);
  std::vector<float> y1((size_t)2 * 300), y2(y1.size());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  binary_gemm_blocked(u.w, u.s, u.a, y1.data());
  omp_set_num_threads(3);
  binary_gemm_blocked(u.w, u.s, u.a, y2.data());
  omp_set_num_threads(saved);
  EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4));
}

TEST(BinaryGemmBlocked, BadBlockScalesAreErrors) {
  Blocked u = make(16, 128, 1, 6, 64, 3);
  BlockScales bad = u.s;
  bad.blocks = 3;
  std::vector<float> y(16);
  EXPECT_THROW(binary_gemm_blocked(u.w, bad, u.a, y.data()), Error);
  EXPECT_THROW(make_block_scales(u.w, 100, u.s.alpha.data(), u.s.mu.data()), Error);
}

}  // namespace
