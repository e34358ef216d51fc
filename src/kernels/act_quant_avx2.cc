// AVX2 activation quantization rows (see act_quant.h for the exact rule).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/act_quant.h"

#define BWLA_T256 __attribute__((target("avx2,fma")))

namespace bwla::detail {

BWLA_T256 void minmax_avx2(const float* x, int n, float* mn, float* mx) {
  __m256 lo = _mm256_set1_ps(x[0]), hi = lo;
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(x + j);
    lo = _mm256_min_ps(lo, v);
    hi = _mm256_max_ps(hi, v);
  }
  alignas(32) float l[8], h[8];
  _mm256_store_ps(l, lo);
  _mm256_store_ps(h, hi);
  float a = l[0], b = h[0];
  for (int i = 1; i < 8; ++i) {
    a = std::min(a, l[i]);
    b = std::max(b, h[i]);
  }
  for (; j < n; ++j) {
    a = std::min(a, x[j]);
    b = std::max(b, x[j]);
  }
  *mn = a;
  *mx = b;
}

BWLA_T256 static inline __m256i quant8(__m256 v, __m256 inv_scale, __m256 zero, __m256 qmax) {
  v = _mm256_mul_ps(v, inv_scale);
  v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm256_add_ps(v, zero);
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), qmax);
  return _mm256_cvttps_epi32(v);
}

BWLA_T256 int32_t quantize_row_avx2(const float* x, int n, float inv_scale, float zero, float qmax,
                                    uint8_t* q) {
  const __m256 vs = _mm256_set1_ps(inv_scale), vz = _mm256_set1_ps(zero), vq = _mm256_set1_ps(qmax);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  __m256i sum = _mm256_setzero_si256();
  int j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m256i a = quant8(_mm256_loadu_ps(x + j), vs, vz, vq);
    const __m256i b = quant8(_mm256_loadu_ps(x + j + 8), vs, vz, vq);
    const __m256i c = quant8(_mm256_loadu_ps(x + j + 16), vs, vz, vq);
    const __m256i d = quant8(_mm256_loadu_ps(x + j + 24), vs, vz, vq);
    sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d)));
    const __m256i ab = _mm256_packus_epi32(a, b), cd = _mm256_packus_epi32(c, d);
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), perm);
    _mm256_storeu_si256((__m256i*)(q + j), bytes);
  }
  for (; j + 8 <= n; j += 8) {
    const __m256i a = quant8(_mm256_loadu_ps(x + j), vs, vz, vq);
    sum = _mm256_add_epi32(sum, a);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    _mm_storel_epi64((__m128i*)(q + j), _mm_packus_epi16(w, w));
  }
  alignas(32) int32_t s[8];
  _mm256_store_si256((__m256i*)s, sum);
  int32_t total = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
  for (; j < n; ++j) {
    float v = std::nearbyint(x[j] * inv_scale) + zero;
    v = std::min(std::max(v, 0.0f), qmax);
    q[j] = (uint8_t)(int)v;
    total += q[j];
  }
  return total;
}

}  // namespace bwla::detail
