#include "kernels/attn_head.h"
#include "kernels/dispatch.h"

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
  const KernelTable& kt = kernels();
  // Scores: one dot product per key row, as the row-major GEMV kernels do.
  kt.row_gemv(T, hd, k, ldk, q, scratch);
  for (int j = 0; j < T; ++j) scratch[j] *= scale;
  softmax_vec(scratch, T);  // the fp32 oracle's softmax (model/ops.h), same bits
  kt.lincomb(scratch, 1, T, v, (long)ldv, hd, out);
}

}  // namespace bwla
