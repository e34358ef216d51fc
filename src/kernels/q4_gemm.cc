#include "kernels/q4_gemm.h"
#include "kernels/dispatch.h"

// GCC 12 reports its own _mm512_undefined_* placeholders inside the reduce intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"
#include "kernels/binary_gemm.h"  // detail::for_row_ranges
#include "kernels/simd_sum.h"

#define BWLA_T256 __attribute__((target("avx2,fma,f16c")))
#define BWLA_T512 __attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
#define BWLA_T512V __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c")))

namespace bwla {

void q4_quantize_rows(const float* w, int rows, int cols, uint8_t* q, uint16_t* scale) {
  BWLA_CHECK(rows >= 0 && cols > 0, "q4_quantize_rows: bad shape {}x{}", rows, cols);
  const int G = q4_groups(cols);
  const size_t rb = q4_row_bytes(cols);
  for (int i = 0; i < rows; ++i) {
    const float* r = w + (size_t)i * cols;
    for (int g = 0; g < G; ++g) {
      float v[kQ4Group] = {};
      float m = 0.0f;
      for (int j = 0; j < kQ4Group && g * kQ4Group + j < cols; ++j) {
        v[j] = r[g * kQ4Group + j];
        BWLA_CHECK(std::isfinite(v[j]),
                   "q4_quantize_rows: non-finite weight {} at row {} column {}", v[j], i,
                   g * kQ4Group + j);
        if (std::fabs(v[j]) > std::fabs(m)) m = v[j];
      }
      // Scale search: d = −m / (8 + k/16) for k in [−16, 16] and d = m / 7, each
      // rounded to fp16; keep the one of least squared error (first on ties).
      uint16_t dh = 0;
      uint8_t qv[kQ4Group] = {8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
                              8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8};
      if (m != 0.0f) {
        double best = INFINITY;
        for (int k = -16; k <= 17; ++k) {
          const uint16_t ch = f32_to_f16(k <= 16 ? -m / (8.0f + k / 16.0f) : m / 7.0f);
          const float d = f16_to_f32(ch);
          if (d == 0.0f) continue;
          uint8_t cq[kQ4Group];
          double err = 0;
          for (int j = 0; j < kQ4Group; ++j) {
            cq[j] = (uint8_t)std::clamp(std::nearbyint(v[j] / d) + 8.0f, 0.0f, 15.0f);
            const double e = (double)v[j] - (double)d * (cq[j] - 8);
            err += e * e;
          }
          if (err < best) {
            best = err;
            dh = ch;
            std::memcpy(qv, cq, sizeof qv);
          }
        }
      }
      scale[(size_t)i * G + g] = dh;
      uint8_t* out = q + (size_t)i * rb + (size_t)g * (kQ4Group / 2);
      for (int j = 0; j < kQ4Group / 2; ++j)
        out[j] = (uint8_t)(qv[j] | (qv[j + kQ4Group / 2] << 4));
    }
  }
}

void q4_dequantize_row(const Q4Matrix& m, int row, float* out) {
  const int G = q4_groups(m.cols);
  const uint8_t* wr = m.w + (size_t)row * q4_row_bytes(m.cols);
  for (int j = 0; j < m.cols; ++j) {
    const int g = j / kQ4Group, k = j % kQ4Group;
    const uint8_t b = wr[g * (kQ4Group / 2) + k % (kQ4Group / 2)];
    const int qv = k < kQ4Group / 2 ? (b & 15) : (b >> 4);
    out[j] = f16_to_f32(m.scale[(size_t)row * G + g]) * (float)(qv - 8);
  }
}

void q4_quantize_acts(const float* x, int tokens, int cols, Q4Acts& a) {
  BWLA_CHECK(tokens >= 0 && cols > 0, "q4_quantize_acts: bad shape {}x{}", tokens, cols);
  a.tokens = tokens;
  a.cols = cols;
  a.groups = q4_groups(cols);
  const size_t stride = (size_t)a.groups * kQ4Group;
  a.q.assign((size_t)tokens * stride, 0);
  a.scale.assign((size_t)tokens * a.groups, 0.0f);
  for (int t = 0; t < tokens; ++t) {
    const float* xt = x + (size_t)t * cols;
    for (int g = 0; g < a.groups; ++g) {
      const int j0 = g * kQ4Group, j1 = std::min(cols, j0 + kQ4Group);
      float mx = 0.0f;
      for (int j = j0; j < j1; ++j) {
        BWLA_CHECK(std::isfinite(xt[j]), "q4_quantize_acts: non-finite input {} at token {} column {}",
                   xt[j], t, j);
        mx = std::max(mx, std::fabs(xt[j]));
      }
      if (mx == 0.0f) continue;
      a.scale[(size_t)t * a.groups + g] = mx / 127.0f;
      const float inv = 127.0f / mx;
      for (int j = j0; j < j1; ++j)
        a.q[(size_t)t * stride + j] =
            (int8_t)std::clamp(std::nearbyint(xt[j] * inv), -127.0f, 127.0f);
    }
  }
}

namespace detail {

void q4_rows_scalar(const Q4Matrix& m, const Q4Acts& a, int r0, int r1, float* y) {
  const int G = a.groups;
  const size_t rb = q4_row_bytes(m.cols), stride = (size_t)G * kQ4Group;
  for (int t = 0; t < a.tokens; ++t) {
    const int8_t* xt = a.q.data() + (size_t)t * stride;
    const float* st = a.scale.data() + (size_t)t * G;
    for (int i = r0; i < r1; ++i) {
      const uint8_t* wr = m.w + (size_t)i * rb;
      float acc = 0.0f;
      for (int g = 0; g < G; ++g) {
        int32_t d = 0;
        for (int j = 0; j < kQ4Group / 2; ++j) {
          const uint8_t b = wr[g * (kQ4Group / 2) + j];
          d += ((b & 15) - 8) * xt[g * kQ4Group + j] +
               ((b >> 4) - 8) * xt[g * kQ4Group + kQ4Group / 2 + j];
        }
        acc += (float)d * (f16_to_f32(m.scale[(size_t)i * G + g]) * st[g]);
      }
      y[(size_t)t * m.rows + i] = acc;
    }
  }
}

namespace {

// Activations of every token rearranged for a SIMD kernel that takes B groups
// (16·B weight bytes) per step: per step, the low halves (columns 0–15) of its
// B groups, then their high halves, so that the low / high nibbles of the
// weight bytes line up with them. Per int32 lane l of a step (bytes 4l..4l+3 of
// both halves, all in group l/4): corr = 8·Σ a (the −8 offset of the weights)
// and the group's activation scale.
struct Arranged {
  int steps = 0;
  std::vector<int8_t> x;     // [tokens, steps, 2, 16·B]
  std::vector<int32_t> corr;  // [tokens, steps, 4·B]
  std::vector<float> sx;      // [tokens, steps, 4·B]
};

template <int B>
void arrange(const Q4Acts& a, Arranged& r) {
  const int G = a.groups;
  r.steps = (G + B - 1) / B;
  const size_t stride = (size_t)G * kQ4Group;
  r.x.assign((size_t)a.tokens * r.steps * 32 * B, 0);
  r.corr.assign((size_t)a.tokens * r.steps * 4 * B, 0);
  r.sx.assign(r.corr.size(), 0.0f);
  for (int t = 0; t < a.tokens; ++t)
    for (int s = 0; s < r.steps; ++s) {
      int8_t* dst = r.x.data() + ((size_t)t * r.steps + s) * 32 * B;
      const size_t lane0 = ((size_t)t * r.steps + s) * 4 * B;
      for (int b = 0; b < B && s * B + b < G; ++b) {
        const int8_t* src = a.q.data() + (size_t)t * stride + (size_t)(s * B + b) * kQ4Group;
        std::memcpy(dst + 16 * b, src, 16);
        std::memcpy(dst + 16 * B + 16 * b, src + 16, 16);
        for (int l = 4 * b; l < 4 * b + 4; ++l) {
          int32_t c = 0;
          for (int k = 0; k < 4; ++k) c += dst[4 * l + k] + dst[16 * B + 4 * l + k];
          r.corr[lane0 + l] = 8 * c;
          r.sx[lane0 + l] = a.scale[(size_t)t * G + s * B + b];
        }
      }
    }
}

// Weight bytes and fp16 scales of the last, partial step of a row, zero-padded
// to a whole step (the padding meets zero activations and zero corrections).
template <int B>
struct TailStep {
  alignas(64) uint8_t w[16 * B] = {};
  uint16_t s[B] = {};
  void load(const Q4Matrix& m, int row, int steps) {
    const int G = q4_groups(m.cols), g0 = (steps - 1) * B, ng = G - g0;
    std::memset(w, 0, sizeof w);
    std::memset(s, 0, sizeof s);
    std::memcpy(w, m.w + (size_t)row * q4_row_bytes(m.cols) + (size_t)g0 * 16, (size_t)ng * 16);
    std::memcpy(s, m.scale + (size_t)row * G + g0, (size_t)ng * 2);
  }
};

// One 128-column step of one row (4 groups): per int32 lane, (Σ q·a − corr)·d·s
// added to acc. Defined twice: with VNNI (vpdpbusd) and with AVX512BW only, each
// under its own target so the second never holds a VNNI instruction.
#define BWLA_Q4_STEP_512(NAME, TARGET, DOT)                                                  \
  TARGET inline __m512 NAME(const uint8_t* w, const uint16_t* ws, const int8_t* x,           \
                            const int32_t* corr, const float* sx, __m512 acc) {               \
    const __m512i nib = _mm512_set1_epi8(0x0F);                                              \
    const __m512i wb = _mm512_loadu_si512(w);                                                \
    const __m512i lo = _mm512_and_si512(wb, nib);                                            \
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(wb, 4), nib);                      \
    const __m512i xl = _mm512_loadu_si512(x), xh = _mm512_loadu_si512(x + 64);               \
    __m512i dp = DOT;                                                                        \
    dp = _mm512_sub_epi32(dp, _mm512_loadu_si512(corr));                                     \
    const __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ws)));   \
    const __m512i idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);    \
    const __m512 sc = _mm512_mul_ps(_mm512_permutexvar_ps(idx, _mm512_castps128_ps512(d4)),  \
                                    _mm512_loadu_ps(sx));                                    \
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), sc, acc);                                 \
  }
BWLA_Q4_STEP_512(step_vnni, BWLA_T512V,
                 _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xl), hi, xh))
// u8 ≤ 15 times s8 ≥ −127, in pairs and then lo + hi: |Σ| ≤ 4·15·127 < 2^15.
BWLA_Q4_STEP_512(step_bw, BWLA_T512,
                 _mm512_madd_epi16(_mm512_add_epi16(_mm512_maddubs_epi16(lo, xl),
                                                    _mm512_maddubs_epi16(hi, xh)),
                                   _mm512_set1_epi16(1)))
#undef BWLA_Q4_STEP_512

#define BWLA_Q4_ROWS_512(NAME, TARGET, STEP)                                                 \
  TARGET void NAME(const Q4Matrix& m, const Q4Acts& a, int r0, int r1, float* y) {           \
    thread_local Arranged ar;                                                                \
    arrange<4>(a, ar);                                                                       \
    const int G = q4_groups(m.cols), S = ar.steps;                                           \
    const size_t rb = q4_row_bytes(m.cols);                                                  \
    const bool partial = G % 4 != 0;                                                         \
    const int full = partial ? S - 1 : S;                                                    \
    for (int i = r0; i < r1; ++i) {                                                          \
      const uint8_t* wr = m.w + (size_t)i * rb;                                              \
      const uint16_t* sr = m.scale + (size_t)i * G;                                          \
      TailStep<4> tail;                                                                      \
      if (partial) tail.load(m, i, S);                                                       \
      for (int t = 0; t < a.tokens; ++t) {                                                   \
        const int8_t* xt = ar.x.data() + (size_t)t * S * 128;                                \
        const int32_t* ct = ar.corr.data() + (size_t)t * S * 16;                             \
        const float* st = ar.sx.data() + (size_t)t * S * 16;                                 \
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;                                      \
        int s = 0;                                                                           \
        for (; s + 2 <= full; s += 2) {                                                      \
          acc0 = STEP(wr + s * 64, sr + s * 4, xt + s * 128, ct + s * 16, st + s * 16, acc0); \
          acc1 = STEP(wr + (s + 1) * 64, sr + (s + 1) * 4, xt + (s + 1) * 128,               \
                      ct + (s + 1) * 16, st + (s + 1) * 16, acc1);                           \
        }                                                                                    \
        if (s < full)                                                                        \
          acc0 = STEP(wr + s * 64, sr + s * 4, xt + s * 128, ct + s * 16, st + s * 16, acc0); \
        if (partial)                                                                         \
          acc1 = STEP(tail.w, tail.s, xt + full * 128, ct + full * 16, st + full * 16, acc1); \
        y[(size_t)t * m.rows + i] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));         \
      }                                                                                      \
    }                                                                                        \
  }

// One 64-column step of one row (2 groups) on AVX2.
BWLA_T256 inline __m256 step_avx2(const uint8_t* w, const uint16_t* ws, const int8_t* x,
                                  const int32_t* corr, const float* sx, __m256 acc) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  const __m256i lo = _mm256_and_si256(wb, nib);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(wb, 4), nib);
  const __m256i xl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  const __m256i xh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32));
  const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh));
  __m256i dp = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
  dp = _mm256_sub_epi32(dp, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr)));
  uint32_t two;
  std::memcpy(&two, ws, 4);
  const __m128 d2 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)two));
  const __m256i idx = _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0);
  const __m256 sc = _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(d2), idx),
                                  _mm256_loadu_ps(sx));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dp), sc, acc);
}

}  // namespace

BWLA_T256 void q4_rows_avx2(const Q4Matrix& m, const Q4Acts& a, int r0, int r1, float* y) {
  thread_local Arranged ar;
  arrange<2>(a, ar);
  const int G = q4_groups(m.cols), S = ar.steps;
  const size_t rb = q4_row_bytes(m.cols);
  const bool partial = G % 2 != 0;
  const int full = partial ? S - 1 : S;
  for (int i = r0; i < r1; ++i) {
    const uint8_t* wr = m.w + (size_t)i * rb;
    const uint16_t* sr = m.scale + (size_t)i * G;
    TailStep<2> tail;
    if (partial) tail.load(m, i, S);
    for (int t = 0; t < a.tokens; ++t) {
      const int8_t* xt = ar.x.data() + (size_t)t * S * 64;
      const int32_t* ct = ar.corr.data() + (size_t)t * S * 8;
      const float* st = ar.sx.data() + (size_t)t * S * 8;
      __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
      int s = 0;
      for (; s + 2 <= full; s += 2) {
        acc0 = step_avx2(wr + s * 32, sr + s * 2, xt + s * 64, ct + s * 8, st + s * 8, acc0);
        acc1 = step_avx2(wr + (s + 1) * 32, sr + (s + 1) * 2, xt + (s + 1) * 64, ct + (s + 1) * 8,
                         st + (s + 1) * 8, acc1);
      }
      if (s < full) acc0 = step_avx2(wr + s * 32, sr + s * 2, xt + s * 64, ct + s * 8, st + s * 8, acc0);
      if (partial)
        acc1 = step_avx2(tail.w, tail.s, xt + full * 64, ct + full * 8, st + full * 8, acc1);
      y[(size_t)t * m.rows + i] = hsum256(_mm256_add_ps(acc0, acc1));
    }
  }
}

BWLA_Q4_ROWS_512(q4_rows_avx512_vnni, BWLA_T512V, step_vnni)
BWLA_Q4_ROWS_512(q4_rows_avx512_bw, BWLA_T512, step_bw)
#undef BWLA_Q4_ROWS_512

}  // namespace detail

void q4_gemm(const Q4Matrix& m, const float* x, int tokens, float* y) {
  BWLA_CHECK(m.rows > 0 && m.cols > 0 && tokens >= 0, "q4_gemm: bad shape rows={} cols={} tokens={}",
             m.rows, m.cols, tokens);
  if (tokens == 0) return;
  thread_local Q4Acts acts;
  q4_quantize_acts(x, tokens, m.cols, acts);
  const auto fn = kernels().q4_rows;
  const Q4Acts& a = acts;
  if ((size_t)m.rows * m.cols < (1u << 16)) {
    fn(m, a, 0, m.rows, y);
    return;
  }
  detail::for_row_ranges(m.rows, [&](int r0, int r1) { fn(m, a, r0, r1, y); });
}

}  // namespace bwla
