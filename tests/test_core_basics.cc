// Core utilities: rng determinism and distribution, fp16/bf16 conversion,
// aligned buffers, errors vs assertions, ISA parsing and forcing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/aligned.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"
#include "core/rng.h"

using namespace bwla;

TEST(Rng, SameSeedSameStreamDifferentSeedDifferent) {
  Rng a(42), b(42), c(43);
  int differ = 0;
  for (int i = 0; i < 1000; ++i) {
    uint64_t x = a.next_u64(), y = b.next_u64(), z = c.next_u64();
    ASSERT_EQ(x, y) << "draw " << i;
    differ += x != z;
  }
  EXPECT_GT(differ, 990);
}

TEST(Rng, UniformAndNormalMoments) {
  Rng r(7);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0, sn4 = 0;
  std::vector<int> hist(10, 0);
  for (int i = 0; i < n; ++i) {
    double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    su += u;
    hist[(int)(u * 10)]++;
    double g = r.normal();
    sn += g;
    sn2 += g * g;
    sn4 += g * g * g * g;
  }
  EXPECT_NEAR(su / n, 0.5, 0.005);
  for (int k = 0; k < 10; ++k) EXPECT_NEAR(hist[k] / (double)n, 0.1, 0.005) << "bin " << k;
  EXPECT_NEAR(sn / n, 0.0, 0.01);
  EXPECT_NEAR(sn2 / n, 1.0, 0.02);
  EXPECT_NEAR(sn4 / n, 3.0, 0.1);  // Gaussian kurtosis
  for (int i = 0; i < 1000; ++i) ASSERT_LT(r.below(17), 17u);
  EXPECT_EQ(r.below(0), 0u);
}

TEST(Half, Bf16RoundTripAndRounding) {
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 1e-30f, 3.0e38f}) {
    uint16_t h = f32_to_bf16(f);
    float back = bf16_to_f32(h);
    EXPECT_NEAR(back, f, std::fabs(f) * (1.0f / 128)) << f;
    EXPECT_EQ(f32_to_bf16(back), h) << "bf16 values are fixed points";
  }
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 0x1p-8f)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-12f)), 1.0f + 0x1p-7f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(Half, F16ExhaustiveRoundTrip) {
  // Every finite fp16 bit pattern survives f16 -> f32 -> f16 exactly.
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32((uint16_t)h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), (uint16_t)h) << "pattern " << h << " value " << f;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);      // overflow to +inf
  EXPECT_EQ(f32_to_f16(1e-9f), 0x0000);     // underflow to +0
  // Halfway between 1 and the next fp16 (1 + 2^-10): ties to even.
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
}

TEST(Aligned, AlignmentZeroingCopyMove) {
  for (size_t n : {1u, 3u, 17u, 1000u}) {
    AlignedBuffer<float> b(n);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(b[i], 0.0f);
    for (size_t i = 0; i < n; ++i) b[i] = (float)i;
    AlignedBuffer<float> c(b);
    ASSERT_NE(c.data(), b.data());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(c[i], (float)i);
    float* p = c.data();
    AlignedBuffer<float> d(std::move(c));
    EXPECT_EQ(d.data(), p);
    EXPECT_EQ(c.size(), 0u);
  }
  AlignedBuffer<int> e;
  EXPECT_EQ(e.size(), 0u);
  EXPECT_EQ(e.data(), nullptr);
}

TEST(Errors, CheckThrowsWithFormattedMessage) {
  try {
    BWLA_CHECK(1 + 1 == 3, "tensor '{}' has shape [{}, {}]", "w", 4, 5);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "tensor 'w' has shape [4, 5]");
  }
  EXPECT_NO_THROW(BWLA_CHECK(true, "never"));
}

TEST(ErrorsDeathTest, AssertAbortsWithValues) {
  int x = 7;
  EXPECT_DEATH(BWLA_ASSERT(x == 8, "x={}", x), "x == 8 failed: x=7");
}

TEST(Cpu, ParseNamesAndClamp) {
  EXPECT_EQ(parse_isa("scalar"), Isa::Scalar);
  EXPECT_EQ(parse_isa("avx2"), Isa::Avx2);
  EXPECT_EQ(parse_isa("avx512"), Isa::Avx512);
  EXPECT_THROW(parse_isa("sse9"), Error);
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) EXPECT_EQ(parse_isa(isa_name(i)), i);
  const Isa before = active_isa();
  EXPECT_EQ(set_active_isa(Isa::Scalar), Isa::Scalar);
  EXPECT_EQ(active_isa(), Isa::Scalar);
  // Asking for more than the CPU has gives the best it has.
  EXPECT_EQ(set_active_isa(Isa::Avx512), best_isa());
  set_active_isa(before);
  EXPECT_EQ(active_isa(), before);
}
