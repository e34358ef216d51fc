#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/binary_gemm.h"
#include "kernels_test_util.h"

using namespace bwla;
using bwla::test::available_isas;
using bwla::test::IsaGuard;
using bwla::test::random_floats;

namespace {

const BinaryKernel kAllKernels[] = {BinaryKernel::Scalar, BinaryKernel::Avx2,
                                    BinaryKernel::Avx512Vnni, BinaryKernel::Avx512MaskAdd,
                                    BinaryKernel::Avx512BitSerial};

std::vector<float> random_signs(Rng& rng, int rows, int cols, double p_plus = 0.5) {
  std::vector<float> w((size_t)rows * cols);
  for (auto& v : w) v = rng.uniform() < p_plus ? 1.0f : -1.0f;
  return w;
}

// S_it straight from the float signs and the quantized bytes (independent of the packing).
std::vector<int32_t> naive_sums(const std::vector<float>& signs, int rows, int cols,
                                const QuantActs& a, int r0, int r1) {
  std::vector<int32_t> S((size_t)a.tokens * (r1 - r0));
  for (int t = 0; t < a.tokens; ++t)
    for (int i = r0; i < r1; ++i) {
      int32_t s = 0;
      for (int j = 0; j < cols; ++j)
        if (signs[(size_t)i * cols + j] > 0) s += a.row(t)[j];
      S[(size_t)t * (r1 - r0) + (i - r0)] = s;
    }
  return S;
}

struct Case {
  int rows, cols, tokens, bits;
};

}  // namespace

TEST(PackedBinary, BitOrderPaddingAndPopcount) {
  const int rows = 3, cols = 130;
  std::vector<float> w((size_t)rows * cols, -1.0f);
  w[0] = 1.0f;              // row 0 col 0   → word 0 bit 0
  w[63] = 0.5f;             // row 0 col 63  → word 0 bit 63
  w[64] = 2.0f;             // row 0 col 64  → word 1 bit 0
  w[cols + 129] = 1.0f;     // row 1 col 129 → word 2 bit 1
  w[2 * cols + 5] = 0.0f;   // zero is not > 0 → clear
  const float alpha[3] = {0.5f, 1.0f, 2.0f}, mu[3] = {0.1f, -0.2f, 0.0f};
  PackedBinary p = pack_binary(w.data(), rows, cols, alpha, mu);
  EXPECT_EQ(p.words_per_row, 8);
  EXPECT_EQ(p.row(0)[0], 1ull | (1ull << 63));
  EXPECT_EQ(p.row(0)[1], 1ull);
  EXPECT_EQ(p.row(1)[2], 2ull);
  for (int k = 3; k < 8; ++k) EXPECT_EQ(p.row(1)[k], 0ull);
  EXPECT_EQ(p.row(2)[0], 0ull);
  EXPECT_EQ(p.row_popcount[0], 3);
  EXPECT_EQ(p.row_popcount[1], 1);
  EXPECT_EQ(p.row_popcount[2], 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p.bits.data()) % 64, 0u);

  std::vector<float> signs((size_t)rows * cols), deq((size_t)rows * cols);
  unpack_binary_signs(p, signs.data());
  unpack_binary(p, deq.data());
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      const float s = w[(size_t)i * cols + j] > 0 ? 1.0f : -1.0f;
      EXPECT_EQ(signs[(size_t)i * cols + j], s);
      EXPECT_FLOAT_EQ(deq[(size_t)i * cols + j], alpha[i] * s + mu[i]);
    }
  EXPECT_EQ(packed_words_per_row(512), 8);
  EXPECT_EQ(packed_words_per_row(513), 16);
}

TEST(BinaryGemm, MaskedSumsExactAllKernels) {
  IsaGuard guard;
  set_active_isa(best_isa());
  Rng rng(7);
  std::vector<Case> cases;
  for (int cols : {1, 63, 64, 65, 511, 513, 2048 + 17})
    for (int tokens : {1, 3, 8, 17})
      for (int bits : {4, 6, 8}) cases.push_back({1 + (int)rng.below(40), cols, tokens, bits});
  cases.push_back({16, 1024, 9, 8});
  cases.push_back({33, 700, 2, 6});
  cases.push_back({35, 300, 5, 4});
  cases.push_back({17, 129, 7, 8});
  cases.push_back({64, 96, 16, 4});
  // Decode over many rows: the four-stream path (quarters + leftover rows).
  cases.push_back({64, 100, 1, 8});
  cases.push_back({203, 513, 1, 8});
  cases.push_back({131, 2048 + 17, 1, 6});
  cases.push_back({70, 64, 1, 4});
  for (const Case& c : cases) {
    auto signs = random_signs(rng, c.rows, c.cols, 0.3 + 0.4 * rng.uniform());
    PackedBinary w = pack_binary(signs.data(), c.rows, c.cols, nullptr, nullptr);
    auto x = random_floats(rng, (size_t)c.tokens * c.cols, -2.0f, 3.0f);
    QuantActs a;
    quantize_acts(x.data(), c.tokens, c.cols, c.bits, 1.0f, a);
    const auto ref = naive_sums(signs, c.rows, c.cols, a, 0, c.rows);
    for (BinaryKernel k : kAllKernels) {
      if (!binary_kernel_available(k)) continue;
      std::vector<int32_t> S(ref.size(), -1);
      binary_masked_sums(w, a, S.data(), 0, -1, k);
      ASSERT_EQ(S, ref) << binary_kernel_name(k) << " rows=" << c.rows << " cols=" << c.cols
                        << " tokens=" << c.tokens << " bits=" << c.bits;
    }
  }
}

TEST(BinaryGemm, MaskedSumsNoOverflowAtExtremes) {
  // All weights +1 and all activations at qmax: largest per-lane sums, crosses the
  // widening intervals of the byte (MaskAdd) and int16 (AVX2) accumulators.
  IsaGuard guard;
  set_active_isa(best_isa());
  for (int bits : {2, 4, 6, 8}) {
    for (int cols : {4200, 64 * 17 + 5}) {
      const int rows = 18, tokens = 9;
      std::vector<float> signs((size_t)rows * cols, 1.0f);
      PackedBinary w = pack_binary(signs.data(), rows, cols, nullptr, nullptr);
      std::vector<float> x((size_t)tokens * cols, 1.0f);
      for (int t = 0; t < tokens; ++t) x[(size_t)t * cols] = 0.0f;  // lo=0 → q(1)=qmax
      QuantActs a;
      quantize_acts(x.data(), tokens, cols, bits, 1.0f, a);
      const int32_t expect = (cols - 1) * a.qmax();
      for (BinaryKernel k : kAllKernels) {
        if (!binary_kernel_available(k)) continue;
        std::vector<int32_t> S((size_t)rows * tokens);
        binary_masked_sums(w, a, S.data(), 0, -1, k);
        for (int32_t s : S) ASSERT_EQ(s, expect) << binary_kernel_name(k) << " bits=" << bits;
      }
    }
  }
}

TEST(BinaryGemm, MatchesDequantizedFloatReferenceEveryIsa) {
  IsaGuard guard;
  Rng rng(11);
  for (Isa isa : available_isas()) {
    set_active_isa(isa);
    for (int cols : {1, 63, 65, 513, 2048 + 17}) {
      for (int tokens : {1, 3, 8, 17}) {
        for (int bits : {4, 6, 8}) {
          const int rows = 1 + (int)rng.below(37);
          auto wf = random_floats(rng, (size_t)rows * cols, -1.0f, 1.0f);
          auto alpha = random_floats(rng, rows, 0.01f, 0.1f);
          auto mu = random_floats(rng, rows, -0.05f, 0.05f);
          PackedBinary w = pack_binary(wf.data(), rows, cols, alpha.data(), mu.data());
          auto x = random_floats(rng, (size_t)tokens * cols, -1.5f, 2.5f);
          QuantActs a;
          quantize_acts(x.data(), tokens, cols, bits, 0.95f, a);
          std::vector<float> wd((size_t)rows * cols), xd((size_t)tokens * cols);
          unpack_binary(w, wd.data());
          dequantize_acts(a, xd.data());
          std::vector<float> y((size_t)tokens * rows, NAN);
          binary_gemm(w, a, y.data());
          for (int t = 0; t < tokens; ++t)
            for (int i = 0; i < rows; ++i) {
              double ref = 0, mag = 0;
              for (int j = 0; j < cols; ++j) {
                const double p = (double)wd[(size_t)i * cols + j] * xd[(size_t)t * cols + j];
                ref += p;
                mag += std::fabs(p);
              }
              ASSERT_NEAR(y[(size_t)t * rows + i], ref, 1e-4 * mag + 1e-6)
                  << isa_name(isa) << " rows=" << rows << " cols=" << cols << " t=" << t
                  << " i=" << i << " bits=" << bits;
            }
        }
      }
    }
  }
}

TEST(BinaryGemm, IdenticalAcrossKernelsRowRangesAndThreads) {
  IsaGuard guard;
  set_active_isa(best_isa());
  Rng rng(3);
  const int rows = 203, cols = 777, tokens = 11;
  auto wf = random_floats(rng, (size_t)rows * cols, -1.0f, 1.0f);
  auto alpha = random_floats(rng, rows, 0.5f, 1.5f);
  auto mu = random_floats(rng, rows, -0.1f, 0.1f);
  PackedBinary w = pack_binary(wf.data(), rows, cols, alpha.data(), mu.data());
  auto x = random_floats(rng, (size_t)tokens * cols, -1.0f, 1.0f);
  for (int bits : {4, 8}) {
    QuantActs a;
    quantize_acts(x.data(), tokens, cols, bits, 1.0f, a);
    std::vector<float> ref((size_t)tokens * rows);
    binary_gemm(w, a, ref.data(), 0, -1, BinaryKernel::Scalar);
    // The double epilogue (vectorized under AVX-512) rounds like the scalar one.
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      std::vector<float> y((size_t)tokens * rows, NAN);
      for (auto [r0, r1] : {std::pair{0, 17}, {17, 18}, {18, 150}, {150, 203}})
        binary_gemm(w, a, y.data(), r0, r1, BinaryKernel::Scalar);
      EXPECT_EQ(y, ref) << "epilogue under " << isa_name(isa);
    }
    set_active_isa(best_isa());
    for (BinaryKernel k : kAllKernels) {
      if (!binary_kernel_available(k)) continue;
      // Pieces of the row range, each writing only its own columns of y.
      std::vector<float> y((size_t)tokens * rows, NAN);
      for (auto [r0, r1] : {std::pair{0, 17}, {17, 18}, {18, 150}, {150, 203}})
        binary_gemm(w, a, y.data(), r0, r1, k);
      EXPECT_EQ(y, ref) << binary_kernel_name(k);
      std::vector<float> yo((size_t)tokens * rows, NAN);
      omp_set_num_threads(2);
      binary_gemm_omp(w, a, yo.data(), k);
      EXPECT_EQ(yo, ref) << binary_kernel_name(k);
      // Partial range of masked sums.
      std::vector<int32_t> Sp((size_t)tokens * 40);
      binary_masked_sums(w, a, Sp.data(), 100, 140, k);
      std::vector<float> signs((size_t)rows * cols);
      unpack_binary_signs(w, signs.data());
      EXPECT_EQ(Sp, naive_sums(signs, rows, cols, a, 100, 140)) << binary_kernel_name(k);
    }
  }
}

TEST(BinaryGemm, DispatchAndErrors) {
  IsaGuard guard;
  Rng rng(5);
  auto wf = random_floats(rng, 4 * 100, -1.0f, 1.0f);
  PackedBinary w = pack_binary(wf.data(), 4, 100, nullptr, nullptr);
  auto x = random_floats(rng, 100, -1.0f, 1.0f);
  QuantActs a;
  quantize_acts(x.data(), 1, 100, 8, 1.0f, a);
  std::vector<float> y(4);
  set_active_isa(Isa::Scalar);
  EXPECT_EQ(default_binary_kernel(8, 1), BinaryKernel::Scalar);
  EXPECT_FALSE(binary_kernel_available(BinaryKernel::Avx2));
  EXPECT_THROW(binary_gemm(w, a, y.data(), 0, -1, BinaryKernel::Avx2), Error);
  EXPECT_THROW(binary_gemm(w, a, y.data(), 0, 5), Error);
  EXPECT_THROW(binary_gemm(w, a, y.data(), 3, 2), Error);
  QuantActs b;
  quantize_acts(x.data(), 1, 99, 8, 1.0f, b);
  EXPECT_THROW(binary_gemm(w, b, y.data()), Error);
  if (best_isa() >= Isa::Avx2) {
    set_active_isa(Isa::Avx2);
    EXPECT_EQ(default_binary_kernel(8, 128), BinaryKernel::Avx2);
    EXPECT_FALSE(binary_kernel_available(BinaryKernel::Avx512Vnni));
  }
  if (best_isa() >= Isa::Avx512) {
    set_active_isa(Isa::Avx512);
    EXPECT_TRUE(binary_kernel_available(BinaryKernel::Avx512MaskAdd));
    // Many tokens: VNNI. One token: bit-serial at <= 6 bits (with VPOPCNTDQ), and at
    // 8 bits only on AMD (measured per vendor, see default_binary_kernel).
    EXPECT_EQ(default_binary_kernel(8, 128), BinaryKernel::Avx512Vnni);
    EXPECT_EQ(default_binary_kernel(6, 128), BinaryKernel::Avx512Vnni);
    const bool pop = cpu_features().avx512vpopcntdq;
    EXPECT_EQ(default_binary_kernel(6, 1),
              pop ? BinaryKernel::Avx512BitSerial : BinaryKernel::Avx512Vnni);
    EXPECT_EQ(default_binary_kernel(8, 1), pop && cpu_features().amd
                                               ? BinaryKernel::Avx512BitSerial
                                               : BinaryKernel::Avx512Vnni);
  }
}
