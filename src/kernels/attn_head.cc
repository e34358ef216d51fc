#include "kernels/attn_head.h"

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/kron.h"  // detail::lincomb_*: the weighted sum of values
#include "kernels/row_gemv.h"  // detail::row_gemv_*: the scores q·k_j
#include "kernels/vexp.h"

namespace bwla {

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
  softmax_vec(scratch, T);  // the fp32 oracle's softmax (model/ops.h), same bits
  wsum(scratch, 1, T, v, (long)ldv, hd, out);
}

}  // namespace bwla
