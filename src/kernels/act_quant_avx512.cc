// AVX-512 activation quantization rows (see act_quant.h for the exact rule).
// GCC 12 reports its own _mm512_undefined_* placeholders inside the reduce intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/act_quant.h"

#define BWLA_T512 __attribute__((target("avx512f,avx512bw,avx512vl")))

namespace bwla::detail {

BWLA_T512 void minmax_avx512(const float* x, int n, float* mn, float* mx) {
  __m512 lo = _mm512_set1_ps(x[0]), hi = lo;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 v = _mm512_loadu_ps(x + j);
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
  }
  if (j < n) {
    const __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
    lo = _mm512_min_ps(lo, _mm512_mask_loadu_ps(lo, k, x + j));
    hi = _mm512_max_ps(hi, _mm512_mask_loadu_ps(hi, k, x + j));
  }
  *mn = _mm512_reduce_min_ps(lo);
  *mx = _mm512_reduce_max_ps(hi);
}

BWLA_T512 static inline __m512i quant16(__m512 v, __m512 inv_scale, __m512 zero, __m512 qmax) {
  v = _mm512_mul_ps(v, inv_scale);
  v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm512_add_ps(v, zero);
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), qmax);
  return _mm512_cvttps_epi32(v);
}

BWLA_T512 int32_t quantize_row_avx512(const float* x, int n, float inv_scale, float zero, float qmax,
                                      uint8_t* q) {
  const __m512 vs = _mm512_set1_ps(inv_scale), vz = _mm512_set1_ps(zero), vq = _mm512_set1_ps(qmax);
  __m512i sum = _mm512_setzero_si512();
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i qi = quant16(_mm512_loadu_ps(x + j), vs, vz, vq);
    _mm_storeu_si128((__m128i*)(q + j), _mm512_cvtepi32_epi8(qi));
    sum = _mm512_add_epi32(sum, qi);
  }
  if (j < n) {
    const __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
    const __m512i qi = quant16(_mm512_maskz_loadu_ps(k, x + j), vs, vz, vq);
    _mm512_mask_cvtepi32_storeu_epi8(q + j, k, qi);
    sum = _mm512_mask_add_epi32(sum, k, sum, qi);
  }
  return _mm512_reduce_add_epi32(sum);
}

}  // namespace bwla::detail
