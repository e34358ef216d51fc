// Decode attention of one query head over T cached positions:
//   s_j = scale · q·k_j,  p = softmax(s),  out = Σ_j p_j · v_j
// with key j at k + j·ldk and value j at v + j·ldv (hd floats each); T and hd
// must be positive. scratch holds T floats (the probabilities on return). The
// model's generic code is compiled for baseline x86-64 (SSE2), where this loop
// was ~6 % of 2-thread W1A6 TinyLlama decode; here it has scalar / AVX2 /
// AVX-512 versions chosen by active_isa(). exp is the C library's in every
// version; sums are in an ISA-dependent order. The weighted sum is the OKT
// kernels' lincomb (kernels/kron.h).
#pragma once

#include <cstddef>

namespace bwla {

void attn_head(const float* q, const float* k, size_t ldk, const float* v, size_t ldv, int T,
               int hd, float scale, float* scratch, float* out);

namespace detail {
void attn_head_scalar(const float* q, const float* k, size_t ldk, const float* v, size_t ldv,
                      int T, int hd, float scale, float* scratch, float* out);
void attn_head_avx2(const float* q, const float* k, size_t ldk, const float* v, size_t ldv,
                    int T, int hd, float scale, float* scratch, float* out);
void attn_head_avx512(const float* q, const float* k, size_t ldk, const float* v, size_t ldv,
                      int T, int hd, float scale, float* scratch, float* out);
}  // namespace detail

}  // namespace bwla
