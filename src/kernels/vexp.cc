#include "kernels/vexp.h"
#include "kernels/dispatch.h"

// GCC 12 reports its own _mm512_undefined_* placeholders inside some intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Same bits in every ISA: no multiply-add may be fused behind our back.
#pragma GCC optimize("-ffp-contract=off")

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/cpu.h"
#include "core/error.h"

#define BWLA_T256 __attribute__((target("avx2,fma")))
#define BWLA_T512 __attribute__((target("avx512f,avx512dq,avx512vl")))

namespace bwla {

namespace {
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kC1 = 0.693359375f, kC2 = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
constexpr float kHi = 88.72283935546875f;  // above: +inf (ln FLT_MAX ≈ 88.7228)
constexpr float kLo = -104.0f;             // below: 0 (e^−104 < half the least denormal)

float pow2i(int n) {
  const uint32_t u = (uint32_t)(n + 127) << 23;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float exp1(float x) {
  if (std::isnan(x)) return x;
  if (x > kHi) return INFINITY;
  if (x < kLo) return 0.0f;
  const float n = std::nearbyint(x * kLog2e);
  float r = std::fma(n, -kC1, x);
  r = std::fma(n, -kC2, r);
  const float r2 = r * r;
  float p = std::fma(kP0, r, kP1);
  p = std::fma(p, r, kP2);
  p = std::fma(p, r, kP3);
  p = std::fma(p, r, kP4);
  p = std::fma(p, r, kP5);
  float y = std::fma(p, r2, r);
  y = y + 1.0f;
  const int ni = (int)n, n1 = ni >> 1, n2 = ni - n1;  // each in [−75, 64]: 2^k a normal float
  return y * pow2i(n1) * pow2i(n2);
}

BWLA_T256 inline __m256 exp8(__m256 x) {
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kLo)), _mm256_set1_ps(kHi));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kC1), xc);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kC2), r);
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kP0), r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  __m256 y = _mm256_fmadd_ps(p, r2, r);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);  // n is integral: exact
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i b = _mm256_set1_epi32(127);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, b), 23)));
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, b), 23)));
  y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(kHi), _CMP_GT_OQ));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(kLo), _CMP_LT_OQ));
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

BWLA_T512 inline __m512 exp16(__m512 x) {
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kLo)), _mm512_set1_ps(kHi));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kC1), xc);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kC2), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kP0), r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  __m512 y = _mm512_fmadd_ps(p, r2, r);
  y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
  const __m512i ni = _mm512_cvtps_epi32(n);
  const __m512i n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  const __m512i b = _mm512_set1_epi32(127);
  y = _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, b), 23)));
  y = _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, b), 23)));
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(kHi), _CMP_GT_OQ), y,
                           _mm512_set1_ps(INFINITY));
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(kLo), _CMP_LT_OQ), y,
                           _mm512_setzero_ps());
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}

BWLA_T256 inline __m256i tail_mask8(long m) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)m), idx);
}
}  // namespace

namespace detail {

void vexp_scalar(const float* x, float* y, long n) {
  for (long i = 0; i < n; ++i) y[i] = exp1(x[i]);
}

BWLA_T256 void vexp_avx2(const float* x, float* y, long n) {
  long i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    _mm256_maskstore_ps(y + i, m, exp8(_mm256_maskload_ps(x + i, m)));
  }
}

BWLA_T512 void vexp_avx512(const float* x, float* y, long n) {
  long i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void silu_mul_scalar(float* a, const float* b, long n) {
  for (long i = 0; i < n; ++i) a[i] = a[i] / (1.0f + exp1(-a[i])) * b[i];
}

BWLA_T256 void silu_mul_avx2(float* a, const float* b, long n) {
  const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
  long i = 0;
  auto f = [&](__m256 g, __m256 bb) BWLA_T256 {
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_xor_ps(g, neg)))), bb);
  };
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(a + i, f(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    _mm256_maskstore_ps(a + i, m, f(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m)));
  }
}

BWLA_T512 void silu_mul_avx512(float* a, const float* b, long n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  auto f = [&](__m512 g, __m512 bb) BWLA_T512 {
    const __m512 ng = _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(g), _mm512_set1_epi32(INT32_MIN)));
    return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, exp16(ng))), bb);
  };
  long i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(a + i, f(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(a + i, m, f(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
  }
}

float sum16_scalar(const float* x, long n) {
  float acc[16] = {};
  for (long i = 0; i < n; ++i) acc[i % 16] += x[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] = acc[l] + acc[l + w];
  return acc[0];
}

BWLA_T256 float sum16_avx2(const float* x, long n) {
  __m256 lo = _mm256_setzero_ps(), hi = lo;  // partial sums 0–7 and 8–15
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    lo = _mm256_add_ps(lo, _mm256_loadu_ps(x + i));
    hi = _mm256_add_ps(hi, _mm256_loadu_ps(x + i + 8));
  }
  if (i < n) {  // masked-out lanes add +0 (exact)
    lo = _mm256_add_ps(lo, _mm256_maskload_ps(x + i, tail_mask8(n - i)));
    if (n - i > 8) hi = _mm256_add_ps(hi, _mm256_maskload_ps(x + i + 8, tail_mask8(n - i - 8)));
  }
  __m256 s8 = _mm256_add_ps(lo, hi);                                       // l + (l+8)
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));  // l + (l+4)
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                       // l + (l+2)
  __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));                   // 0 + 1
  return _mm_cvtss_f32(s1);
}

BWLA_T512 float sum16_avx512(const float* x, long n) {
  __m512 acc = _mm512_setzero_ps();
  long i = 0;
  for (; i + 16 <= n; i += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + i));
  if (i < n) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1), x + i));
  __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

}  // namespace detail

void vexp(const float* x, float* y, long n) { kernels().vexp(x, y, n); }

void silu_mul_vec(float* a, const float* b, long n) { kernels().silu_mul(a, b, n); }

void softmax_vec(float* x, int n) {
  BWLA_ASSERT(n >= 1, "softmax of {} entries", n);
  const float m = *std::max_element(x, x + n);
  for (int i = 0; i < n; ++i) x[i] -= m;
  vexp(x, x, n);
  const float s = kernels().sum16(x, n);
  const float inv = 1.0f / s;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace bwla
