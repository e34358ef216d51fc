#include "kernels/act_quant.h"
#include "kernels/dispatch.h"

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/error.h"

namespace bwla {
namespace detail {

void minmax_scalar(const float* x, int n, float* mn, float* mx) {
  float lo = x[0], hi = x[0];
  for (int j = 1; j < n; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  *mn = lo;
  *mx = hi;
}

int32_t quantize_row_scalar(const float* x, int n, float inv_scale, float zero, float qmax,
                            uint8_t* q) {
  int32_t sum = 0;
  for (int j = 0; j < n; ++j) {
    float v = std::nearbyint(x[j] * inv_scale) + zero;
    v = std::min(std::max(v, 0.0f), qmax);
    q[j] = (uint8_t)(int)v;
    sum += q[j];
  }
  return sum;
}

}  // namespace detail

void quantize_acts(const float* x, int tokens, int cols, int bits, float clip, QuantActs& out) {
  BWLA_CHECK(tokens >= 0 && cols > 0, "quantize_acts: bad shape {}x{}", tokens, cols);
  BWLA_CHECK(bits >= 2 && bits <= 8, "quantize_acts: bits must be in [2, 8], got {}", bits);
  BWLA_CHECK(clip > 0.0f && clip <= 1.0f, "quantize_acts: clip must be in (0, 1], got {}", clip);
  out.tokens = tokens;
  out.cols = cols;
  out.bits = bits;
  out.stride = (cols + 63) / 64 * 64;
  const size_t need = (size_t)tokens * out.stride;
  if (out.q.size() < need) out.q.resize(need, false);
  out.scale.resize(tokens);
  out.zero.resize(tokens);
  out.qsum.resize(tokens);

  const auto minmax = kernels().minmax;
  const auto qrow = kernels().quantize_row;
  const float qmax = (float)((1 << bits) - 1);
  for (int t = 0; t < tokens; ++t) {
    const float* xt = x + (size_t)t * cols;
    uint8_t* qt = out.q.data() + (size_t)t * out.stride;
    float mn, mx;
    minmax(xt, cols, &mn, &mx);
    const ActQuantParams p = act_quant_params(mn, mx, clip, qmax);
    out.scale[t] = p.scale;
    out.zero[t] = p.zero;
    out.qsum[t] = qrow(xt, cols, p.inv_scale, p.zero, qmax, qt);
    std::fill(qt + cols, qt + out.stride, (uint8_t)0);
  }
}

void dequantize_acts(const QuantActs& a, float* out) {
  for (int t = 0; t < a.tokens; ++t)
    for (int j = 0; j < a.cols; ++j)
      out[(size_t)t * a.cols + j] = a.scale[t] * ((float)a.row(t)[j] - a.zero[t]);
}

}  // namespace bwla
