// Decode attention of one query head over T cached positions:
//   s_j = scale · q·k_j,  p = softmax(s),  out = Σ_j p_j · v_j
// with key j at k + j·ldk and value j at v + j·ldv (hd floats each); T and hd
// must be positive. scratch holds T floats (the probabilities on return). The
// model's generic code is compiled for baseline x86-64 (SSE2), where this loop
// was ~6 % of 2-thread W1A6 TinyLlama decode. Here the scores are the row GEMV
// (kernels/row_gemv.h) and the weighted sum the OKT kernels' lincomb
// (kernels/kron.h), each in its scalar / AVX2 / AVX-512 version chosen by
// active_isa(); the softmax is kernels/vexp.h's (the oracle's). The dot
// products and weighted sum are in an ISA-dependent order.
#pragma once

#include <cstddef>

namespace bwla {

void attn_head(const float* q, const float* k, size_t ldk, const float* v, size_t ldv, int T,
               int hd, float scale, float* scratch, float* out);

}  // namespace bwla
