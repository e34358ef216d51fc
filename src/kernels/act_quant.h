// Per-token asymmetric activation quantization to b bits (b ∈ 2..8):
//   x̂_tj = s_t·(q_tj − z_t),  q ∈ [0, 2^b − 1] stored as uint8.
// Per token: lo = min(x)·clip, hi = max(x)·clip, s = (hi − lo)/(2^b − 1)
// (s = 1 when hi == lo), r = 1/s (fp32), z = nearbyint(−lo·r) (a float holding
// an integer), q = clamp(nearbyint(x·r) + z, 0, 2^b − 1). Rounding is
// round-half-even in every ISA and x·r is one IEEE multiply, so q is bit-exact
// across ISAs and equal to quant/act_quant.h's fake quantizer (which the
// pipeline measures quality with).
#pragma once
#include <cstdint>
#include <vector>

#include "core/aligned.h"

namespace bwla {

struct QuantActs {
  int tokens = 0, cols = 0, bits = 0;
  int stride = 0;              // bytes per token row, multiple of 64; padding is zero
  AlignedBuffer<uint8_t> q;    // tokens * stride
  std::vector<float> scale, zero;
  std::vector<int32_t> qsum;   // Σ_j q_tj

  const uint8_t* row(int t) const { return q.data() + (size_t)t * stride; }
  int qmax() const { return (1 << bits) - 1; }
};

// x: row-major [tokens, cols], any alignment. Reuses out's buffers when large enough.
void quantize_acts(const float* x, int tokens, int cols, int bits, float clip, QuantActs& out);

// Dequantized values s_t·(q_tj − z_t) into [tokens, cols] (for tests / references).
void dequantize_acts(const QuantActs& a, float* out);

namespace detail {
// Per-ISA row kernels (exposed for tests). quantize_row multiplies by inv_scale
// and returns Σ q.
void minmax_scalar(const float* x, int n, float* mn, float* mx);
int32_t quantize_row_scalar(const float* x, int n, float inv_scale, float zero, float qmax, uint8_t* q);
void minmax_avx2(const float* x, int n, float* mn, float* mx);
int32_t quantize_row_avx2(const float* x, int n, float inv_scale, float zero, float qmax, uint8_t* q);
void minmax_avx512(const float* x, int n, float* mn, float* mx);
int32_t quantize_row_avx512(const float* x, int n, float inv_scale, float zero, float qmax, uint8_t* q);
}  // namespace detail

}  // namespace bwla
