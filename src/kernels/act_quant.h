// Per-token asymmetric activation quantization to b bits (b ∈ 2..8):
//   x̂_tj = s_t·(q_tj − z_t),  q ∈ [0, 2^b − 1] stored as uint8.
// Per token, from its min and max (act_quant_params below): s, r = 1/s (fp32)
// and z (a float holding an integer); q = clamp(nearbyint(x·r) + z, 0, 2^b − 1).
// Rounding is round-half-even in every ISA and x·r is one IEEE multiply, so q
// is bit-exact across ISAs. quant/act_quant.h's fake quantizer is exactly
// dequantize(quantize(x)) with the same parameters and codes (the pipeline
// measures quality with it).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/aligned.h"

namespace bwla {

struct ActQuantParams {
  float scale, inv_scale, zero;
};

// The one rule for a token's parameters, shared by the packed kernels and the
// fake quantizer. Ordinarily lo = mn·clip, hi = mx·clip, s = (hi − lo)/qmax
// (hi/qmax − lo/qmax if that overflows) and z = nearbyint(−lo/s). A constant
// row (mn == mx, clip not applied: one value has no outliers) and a range too
// narrow for a finite 1/s are represented by one value c, the constant or the
// wider end of the range: s = |c|, z = 1 if c < 0 else 0, so that c itself is
// a code (q = 1 or 0) and dequantizes exactly; c = 0, or |c| too small for a
// finite 1/|c|, gives s = 1, z = 0 (the row becomes zeros).
inline ActQuantParams act_quant_params(float mn, float mx, float clip, float qmax) {
  if (mx > mn) {
    const float lo = mn * clip, hi = mx * clip;
    float s = (hi - lo) / qmax;
    if (!std::isfinite(s)) s = hi / qmax - lo / qmax;
    const float inv = 1.0f / s;
    if (s > 0.0f && std::isfinite(inv)) return {s, inv, std::nearbyint(-lo * inv)};
  }
  const float lo = mx > mn ? mn * clip : mn, hi = mx > mn ? mx * clip : mx;
  const float c = std::fabs(hi) >= std::fabs(lo) ? hi : lo;
  const float s = std::fabs(c), inv = 1.0f / s;
  if (!(s > 0.0f) || !std::isfinite(inv)) return {1.0f, 1.0f, 0.0f};
  return {s, inv, c < 0.0f ? 1.0f : 0.0f};
}

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
