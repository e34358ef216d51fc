#include "kernels/attn_head.h"

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/kron.h"  // detail::lincomb_*: the weighted sum of values
#include "kernels/row_gemv.h"  // detail::row_gemv_*: the scores q·k_j

namespace bwla {

namespace {
// p = softmax(s) in place over T entries (max-subtracted, like the fp32 oracle).
void softmax_inplace(float* s, int T) {
  const float m = *std::max_element(s, s + T);
  float sum = 0.0f;
  for (int j = 0; j < T; ++j) {
    s[j] = std::exp(s[j] - m);
    sum += s[j];
  }
  const float inv = 1.0f / sum;
  for (int j = 0; j < T; ++j) s[j] *= inv;
}
}  // namespace

void attn_head(const float* q, const float* k, size_t ldk, const float* v, size_t ldv, int T,
               int hd, float scale, float* scratch, float* out) {
  BWLA_ASSERT(T > 0 && hd > 0, "attn_head: {} positions, head width {}", T, hd);
  const Isa isa = active_isa();
  // Scores: one dot product per key row, as the row-major GEMV kernels do.
  auto scores = isa == Isa::Avx512 ? detail::row_gemv_avx512
                : isa == Isa::Avx2 ? detail::row_gemv_avx2
                                   : detail::row_gemv_scalar;
  auto wsum = isa == Isa::Avx512 ? detail::lincomb_avx512
              : isa == Isa::Avx2 ? detail::lincomb_avx2
                                 : detail::lincomb_scalar;
  scores(T, hd, k, ldk, q, scratch);
  for (int j = 0; j < T; ++j) scratch[j] *= scale;
  softmax_inplace(scratch, T);
  wsum(scratch, 1, T, v, (long)ldv, hd, out);
}

}  // namespace bwla
