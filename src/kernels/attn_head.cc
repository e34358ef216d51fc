#include "kernels/attn_head.h"

// GCC 12 false positive inside _mm512_reduce_add_ps (as in the other kernels).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/kron.h"  // detail::lincomb_*: the weighted sum of values
#include "kernels/simd_sum.h"

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

namespace detail {

void attn_head_scalar(const float* q, const float* k, size_t ldk, const float* v, size_t ldv,
                      int T, int hd, float scale, float* scratch, float* out) {
  for (int j = 0; j < T; ++j) {
    const float* kj = k + (size_t)j * ldk;
    float d = 0.0f;
    for (int i = 0; i < hd; ++i) d += q[i] * kj[i];
    scratch[j] = d * scale;
  }
  softmax_inplace(scratch, T);
  lincomb_scalar(scratch, 1, T, v, (long)ldv, hd, out);
}

__attribute__((target("avx2,fma"))) void attn_head_avx2(const float* q, const float* k,
                                                       size_t ldk, const float* v, size_t ldv,
                                                       int T, int hd, float scale, float* scratch,
                                                       float* out) {
  const int h8 = hd & ~7;
  for (int j = 0; j < T; ++j) {
    const float* kj = k + (size_t)j * ldk;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int i = 0;
    for (; i + 16 <= h8; i += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kj + i), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(kj + i + 8), a1);
    }
    for (; i < h8; i += 8)
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kj + i), a0);
    float d = hsum256(_mm256_add_ps(a0, a1));
    for (; i < hd; ++i) d += q[i] * kj[i];
    scratch[j] = d * scale;
  }
  softmax_inplace(scratch, T);
  lincomb_avx2(scratch, 1, T, v, (long)ldv, hd, out);
}

__attribute__((target("avx512f"))) void attn_head_avx512(const float* q, const float* k,
                                                        size_t ldk, const float* v, size_t ldv,
                                                        int T, int hd, float scale,
                                                        float* scratch, float* out) {
  const int h16 = hd & ~15;
  const __mmask16 tail = (__mmask16)((1u << (hd - h16)) - 1u);
  for (int j = 0; j < T; ++j) {
    const float* kj = k + (size_t)j * ldk;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int i = 0;
    for (; i + 32 <= h16; i += 32) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(kj + i), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), _mm512_loadu_ps(kj + i + 16), a1);
    }
    for (; i < h16; i += 16)
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(kj + i), a0);
    if (tail)
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q + h16), _mm512_maskz_loadu_ps(tail, kj + h16),
                           a1);
    scratch[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * scale;
  }
  softmax_inplace(scratch, T);
  lincomb_avx512(scratch, 1, T, v, (long)ldv, hd, out);
}

}  // namespace detail

void attn_head(const float* q, const float* k, size_t ldk, const float* v, size_t ldv, int T,
               int hd, float scale, float* scratch, float* out) {
  BWLA_ASSERT(T > 0 && hd > 0, "attn_head: {} positions, head width {}", T, hd);
  switch (active_isa()) {
    case Isa::Avx512: detail::attn_head_avx512(q, k, ldk, v, ldv, T, hd, scale, scratch, out); return;
    case Isa::Avx2: detail::attn_head_avx2(q, k, ldk, v, ldv, T, hd, scale, scratch, out); return;
    case Isa::Scalar: detail::attn_head_scalar(q, k, ldk, v, ldv, T, hd, scale, scratch, out); return;
  }
}

}  // namespace bwla
