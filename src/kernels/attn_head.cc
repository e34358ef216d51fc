#include "kernels/attn_head.h"

// GCC 12 false positive inside _mm512_reduce_add_ps (as in the other kernels).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/error.h"
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
  for (int i = 0; i < hd; ++i) out[i] = 0.0f;
  for (int j = 0; j < T; ++j) {
    const float* vj = v + (size_t)j * ldv;
    for (int i = 0; i < hd; ++i) out[i] += scratch[j] * vj[i];
  }
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
  // out in chunks of 32 floats held in four registers across all T positions
  // (named registers for whole chunks, as in the AVX-512 version).
  int c0 = 0;
  for (; c0 + 32 <= h8; c0 += 32) {
    __m256 o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
    for (int j = 0; j < T; ++j) {
      const __m256 p = _mm256_broadcast_ss(scratch + j);
      const float* vj = v + (size_t)j * ldv + c0;
      o0 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj), o0);
      o1 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8), o1);
      o2 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 16), o2);
      o3 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 24), o3);
    }
    _mm256_storeu_ps(out + c0, o0);
    _mm256_storeu_ps(out + c0 + 8, o1);
    _mm256_storeu_ps(out + c0 + 16, o2);
    _mm256_storeu_ps(out + c0 + 24, o3);
  }
  for (int c = c0; c < h8; c += 32) {
    const int w = std::min(32, h8 - c) / 8;  // registers in this chunk
    __m256 o[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    for (int j = 0; j < T; ++j) {
      const __m256 p = _mm256_broadcast_ss(scratch + j);
      const float* vj = v + (size_t)j * ldv + c;
      for (int r = 0; r < w; ++r) o[r] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8 * r), o[r]);
    }
    for (int r = 0; r < w; ++r) _mm256_storeu_ps(out + c + 8 * r, o[r]);
  }
  for (int i = h8; i < hd; ++i) {
    float s = 0.0f;
    for (int j = 0; j < T; ++j) s += scratch[j] * v[(size_t)j * ldv + i];
    out[i] = s;
  }
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
  // out in chunks of 64 floats held in four registers across all T positions;
  // the last chunk may end in a masked partial register. Whole 64-float chunks
  // (hd = 64, 128) use named registers: the indexed array below is kept on the
  // stack by GCC (store-forwarding latency on every FMA).
  int c0 = 0;
  for (; c0 + 64 <= hd; c0 += 64) {
    __m512 o0 = _mm512_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
    for (int j = 0; j < T; ++j) {
      const __m512 p = _mm512_set1_ps(scratch[j]);
      const float* vj = v + (size_t)j * ldv + c0;
      o0 = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj), o0);
      o1 = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 16), o1);
      o2 = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 32), o2);
      o3 = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 48), o3);
    }
    _mm512_storeu_ps(out + c0, o0);
    _mm512_storeu_ps(out + c0 + 16, o1);
    _mm512_storeu_ps(out + c0 + 32, o2);
    _mm512_storeu_ps(out + c0 + 48, o3);
  }
  for (int c = c0; c < hd; c += 64) {
    const int n = std::min(64, hd - c);
    const int full = n / 16;
    const __mmask16 m = (__mmask16)((1u << (n - 16 * full)) - 1u);
    __m512 o[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
    for (int j = 0; j < T; ++j) {
      const __m512 p = _mm512_set1_ps(scratch[j]);
      const float* vj = v + (size_t)j * ldv + c;
      for (int r = 0; r < full; ++r) o[r] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 16 * r), o[r]);
      if (m) o[full] = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m, vj + 16 * full), o[full]);
    }
    for (int r = 0; r < full; ++r) _mm512_storeu_ps(out + c + 16 * r, o[r]);
    if (m) _mm512_mask_storeu_ps(out + c + 16 * full, m, o[full]);
  }
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
