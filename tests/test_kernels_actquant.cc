#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/act_quant.h"
#include "kernels_test_util.h"

using namespace bwla;
using bwla::test::available_isas;
using bwla::test::IsaGuard;

namespace {

void expect_same(const QuantActs& a, const QuantActs& b, const char* what) {
  ASSERT_EQ(a.tokens, b.tokens);
  ASSERT_EQ(a.cols, b.cols);
  ASSERT_EQ(a.stride, b.stride);
  for (int t = 0; t < a.tokens; ++t) {
    EXPECT_EQ(a.scale[t], b.scale[t]) << what << " t=" << t;
    EXPECT_EQ(a.zero[t], b.zero[t]) << what << " t=" << t;
    EXPECT_EQ(a.qsum[t], b.qsum[t]) << what << " t=" << t;
    ASSERT_EQ(0, std::memcmp(a.row(t), b.row(t), a.stride)) << what << " t=" << t;
  }
}

}  // namespace

TEST(ActQuant, BitExactAcrossIsasMisalignedAndTails) {
  IsaGuard guard;
  Rng rng(42);
  for (int cols : {1, 7, 15, 16, 17, 31, 63, 64, 65, 511, 513, 2048 + 17}) {
    for (int tokens : {1, 3}) {
      for (int bits : {4, 6, 8}) {
        for (float clip : {1.0f, 0.85f}) {
          for (int offset : {0, 1, 3}) {
            std::vector<float> buf((size_t)tokens * cols + offset);
            for (auto& v : buf) v = (float)rng.normal() * 3.0f + (rng.uniform() < 0.1 ? 5.0f : 0.0f);
            const float* x = buf.data() + offset;
            set_active_isa(Isa::Scalar);
            QuantActs ref;
            quantize_acts(x, tokens, cols, bits, clip, ref);
            // Independent properties of the reference.
            for (int t = 0; t < tokens; ++t) {
              int32_t s = 0;
              for (int j = 0; j < ref.stride; ++j) {
                const int q = ref.row(t)[j];
                if (j >= cols) {
                  ASSERT_EQ(q, 0) << "padding must be zero";
                  continue;
                }
                ASSERT_LE(q, ref.qmax());
                s += q;
                const float xv = x[(size_t)t * cols + j];
                const float deq = ref.scale[t] * ((float)q - ref.zero[t]);
                float mn = x[(size_t)t * cols], mx = mn;
                for (int k = 0; k < cols; ++k) {
                  mn = std::min(mn, x[(size_t)t * cols + k]);
                  mx = std::max(mx, x[(size_t)t * cols + k]);
                }
                if (clip == 1.0f && mx > mn)
                  ASSERT_LE(std::fabs(deq - xv), 0.5001f * ref.scale[t] + 1e-6f * std::fabs(xv))
                      << "cols=" << cols << " j=" << j;
              }
              EXPECT_EQ(s, ref.qsum[t]);
              EXPECT_EQ(ref.zero[t], std::nearbyint(ref.zero[t]));
            }
            for (Isa isa : available_isas()) {
              set_active_isa(isa);
              QuantActs got;
              quantize_acts(x, tokens, cols, bits, clip, got);
              expect_same(ref, got, isa_name(isa));
            }
          }
        }
      }
    }
  }
}

TEST(ActQuant, RoundHalfEvenTies) {
  IsaGuard guard;
  // lo = 0, hi = 15 → scale = 1, zero = 0; x = k + 0.5 are exact ties.
  std::vector<float> x = {0.0f, 0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 14.5f, 15.0f};
  for (int i = 0; i < 40; ++i) x.push_back(2.5f);  // long enough for the SIMD body
  const uint8_t expect_head[8] = {0, 0, 2, 2, 4, 4, 14, 15};
  for (Isa isa : available_isas()) {
    set_active_isa(isa);
    QuantActs a;
    quantize_acts(x.data(), 1, (int)x.size(), 4, 1.0f, a);
    EXPECT_EQ(a.scale[0], 1.0f);
    EXPECT_EQ(a.zero[0], 0.0f);
    for (int j = 0; j < 8; ++j) EXPECT_EQ(a.row(0)[j], expect_head[j]) << isa_name(isa) << " j=" << j;
    for (size_t j = 8; j < x.size(); ++j) EXPECT_EQ(a.row(0)[j], 2) << isa_name(isa);
  }
}

TEST(ActQuant, ConstantRowAndZeroPoint) {
  IsaGuard guard;
  std::vector<float> x(100, 2.0f);
  for (Isa isa : available_isas()) {
    set_active_isa(isa);
    QuantActs a;
    quantize_acts(x.data(), 1, 100, 8, 1.0f, a);
    // The constant is itself a code: s = 2, z = 0, q = 1.
    EXPECT_EQ(a.scale[0], 2.0f);
    EXPECT_EQ(a.zero[0], 0.0f);
    for (int j = 0; j < 100; ++j) EXPECT_EQ(a.row(0)[j], 1);
  }
  // Range [-3, 12] at 4 bits: scale 1, zero point 3.
  std::vector<float> y = {-3.0f, 0.0f, 12.0f, 1.4f, -1.6f};
  QuantActs a;
  quantize_acts(y.data(), 1, 5, 4, 1.0f, a);
  EXPECT_EQ(a.scale[0], 1.0f);
  EXPECT_EQ(a.zero[0], 3.0f);
  const uint8_t expect[5] = {0, 3, 15, 4, 1};
  for (int j = 0; j < 5; ++j) EXPECT_EQ(a.row(0)[j], expect[j]) << j;
  EXPECT_EQ(a.qsum[0], 23);
}

TEST(ActQuant, RejectsBadArguments) {
  std::vector<float> x(8, 1.0f);
  QuantActs a;
  EXPECT_THROW(quantize_acts(x.data(), 1, 8, 9, 1.0f, a), Error);
  EXPECT_THROW(quantize_acts(x.data(), 1, 8, 1, 1.0f, a), Error);
  EXPECT_THROW(quantize_acts(x.data(), 1, 0, 8, 1.0f, a), Error);
  EXPECT_THROW(quantize_acts(x.data(), 1, 8, 8, 0.0f, a), Error);
}
