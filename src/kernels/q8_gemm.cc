#include "kernels/q8_gemm.h"
#include "kernels/dispatch.h"

// GCC 12 reports its own _mm512_undefined_* placeholders inside the reduce intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/binary_gemm.h"  // detail::for_row_ranges
#include "kernels/simd_sum.h"

#define BWLA_T256 __attribute__((target("avx2,fma")))
#define BWLA_T512 __attribute__((target("avx512f,avx512bw,avx512vl")))

namespace bwla {

void q8_quantize_rows(const float* w, int rows, int cols, int8_t* q, float* scale) {
  BWLA_CHECK(rows >= 0 && cols > 0, "q8_quantize_rows: bad shape {}x{}", rows, cols);
  for (int i = 0; i < rows; ++i) {
    const float* r = w + (size_t)i * cols;
    float mx = 0.0f;
    for (int j = 0; j < cols; ++j) {
      BWLA_CHECK(std::isfinite(r[j]), "q8_quantize_rows: non-finite weight {} at row {} column {}",
                 r[j], i, j);
      mx = std::max(mx, std::fabs(r[j]));
    }
    const float s = mx > 0.0f ? mx / 127.0f : 1.0f;
    scale[i] = s;
    for (int j = 0; j < cols; ++j) {
      const float v = std::nearbyint(r[j] / s);
      q[(size_t)i * cols + j] = (int8_t)std::min(127.0f, std::max(-127.0f, v));
    }
  }
}

namespace detail {

void q8_rows_scalar(const Q8Matrix& m, const float* x, int tokens, int r0, int r1, float* y) {
  for (int t = 0; t < tokens; ++t) {
    const float* xt = x + (size_t)t * m.cols;
    for (int i = r0; i < r1; ++i) {
      const int8_t* wr = m.w + (size_t)i * m.stride;
      float s = 0.0f;
      for (int j = 0; j < m.cols; ++j) s += (float)wr[j] * xt[j];
      y[(size_t)t * m.rows + i] = m.scale[i] * s;
    }
  }
}

namespace {

// One row against T tokens (T ≤ 4): each 16 converted weights feed T FMAs.
template <int T>
BWLA_T512 void row_avx512(const int8_t* wr, const float* x, size_t ldx, int cols, float sc,
                          float* y, size_t ldy) {
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  int j = 0;
  for (; j + 16 <= cols; j += 16) {
    const __m512 wv =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(wr + j))));
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + t * ldx + j), acc[t]);
  }
  if (j < cols) {
    const __mmask16 k = (__mmask16)((1u << (cols - j)) - 1);
    const __m512 wv =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, wr + j)));
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(k, x + t * ldx + j), acc[t]);
  }
  for (int t = 0; t < T; ++t) y[t * ldy] = sc * _mm512_reduce_add_ps(acc[t]);
}

// Decode (one token): 4 rows from 4 distant parts of the range at once, so the
// core streams 4 regions in parallel (one sequential stream reaches about half
// the read bandwidth of several, measured on the TinyLlama head).
BWLA_T512 inline __m512 cvt16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)));
}
BWLA_T512 inline __m512 cvt16m(const int8_t* p, __mmask16 k) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, p)));
}

BWLA_T512 void rows4_avx512(const Q8Matrix& m, const float* x, const int* rows, float* y) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int8_t* w0 = m.w + (size_t)rows[0] * m.stride;
  const int8_t* w1 = m.w + (size_t)rows[1] * m.stride;
  const int8_t* w2 = m.w + (size_t)rows[2] * m.stride;
  const int8_t* w3 = m.w + (size_t)rows[3] * m.stride;
  int j = 0;
  for (; j + 16 <= m.cols; j += 16) {
    const __m512 xv = _mm512_loadu_ps(x + j);
    a0 = _mm512_fmadd_ps(cvt16(w0 + j), xv, a0);
    a1 = _mm512_fmadd_ps(cvt16(w1 + j), xv, a1);
    a2 = _mm512_fmadd_ps(cvt16(w2 + j), xv, a2);
    a3 = _mm512_fmadd_ps(cvt16(w3 + j), xv, a3);
  }
  if (j < m.cols) {
    const __mmask16 k = (__mmask16)((1u << (m.cols - j)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(k, x + j);
    a0 = _mm512_fmadd_ps(cvt16m(w0 + j, k), xv, a0);
    a1 = _mm512_fmadd_ps(cvt16m(w1 + j, k), xv, a1);
    a2 = _mm512_fmadd_ps(cvt16m(w2 + j, k), xv, a2);
    a3 = _mm512_fmadd_ps(cvt16m(w3 + j, k), xv, a3);
  }
  y[rows[0]] = m.scale[rows[0]] * _mm512_reduce_add_ps(a0);
  y[rows[1]] = m.scale[rows[1]] * _mm512_reduce_add_ps(a1);
  y[rows[2]] = m.scale[rows[2]] * _mm512_reduce_add_ps(a2);
  y[rows[3]] = m.scale[rows[3]] * _mm512_reduce_add_ps(a3);
}

template <int T>
BWLA_T256 void row_avx2(const int8_t* wr, const float* x, size_t ldx, int cols, float sc, float* y,
                        size_t ldy) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= cols; j += 8) {
    const __m256 wv = _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(wr + j))));
    for (int t = 0; t < T; ++t)
      acc[t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * ldx + j), acc[t]);
  }
  for (int t = 0; t < T; ++t) {
    float s = hsum256(acc[t]);
    for (int jj = j; jj < cols; ++jj) s += (float)wr[jj] * x[t * ldx + jj];
    y[t * ldy] = sc * s;
  }
}

template <typename RowFn>
void rows_tiled(const Q8Matrix& m, const float* x, int tokens, int r0, int r1, float* y,
                const RowFn& fn) {
  // Token blocks of 4 (weights converted once per block); rows in tiles of 64
  // so a block's weight rows stay in L2 across its token blocks.
  constexpr int kRowTile = 64;
  for (int i0 = r0; i0 < r1; i0 += kRowTile) {
    const int i1 = std::min(r1, i0 + kRowTile);
    for (int t0 = 0; t0 < tokens; t0 += 4) {
      const int nt = std::min(4, tokens - t0);
      for (int i = i0; i < i1; ++i)
        fn(nt, m.w + (size_t)i * m.stride, x + (size_t)t0 * m.cols, m.scale[i],
           y + (size_t)t0 * m.rows + i);
    }
  }
}

}  // namespace

BWLA_T512 void q8_rows_avx512(const Q8Matrix& m, const float* x, int tokens, int r0, int r1,
                              float* y) {
  const size_t ldx = m.cols, ldy = m.rows;
  if (tokens == 1 && r1 - r0 >= 64) {
    // Four interleaved streams: quarter q of the range is rows [r0 + q·Q, r0 + (q+1)·Q).
    const int Q = (r1 - r0) / 4;
    for (int i = 0; i < Q; ++i) {
      const int rows[4] = {r0 + i, r0 + Q + i, r0 + 2 * Q + i, r0 + 3 * Q + i};
      rows4_avx512(m, x, rows, y);
    }
    for (int i = r0 + 4 * Q; i < r1; ++i)
      row_avx512<1>(m.w + (size_t)i * m.stride, x, ldx, m.cols, m.scale[i], y + i, ldy);
    return;
  }
  rows_tiled(m, x, tokens, r0, r1, y, [&](int nt, const int8_t* wr, const float* xt, float sc, float* yt) {
    switch (nt) {
      case 1: row_avx512<1>(wr, xt, ldx, m.cols, sc, yt, ldy); break;
      case 2: row_avx512<2>(wr, xt, ldx, m.cols, sc, yt, ldy); break;
      case 3: row_avx512<3>(wr, xt, ldx, m.cols, sc, yt, ldy); break;
      default: row_avx512<4>(wr, xt, ldx, m.cols, sc, yt, ldy); break;
    }
  });
}

BWLA_T256 void q8_rows_avx2(const Q8Matrix& m, const float* x, int tokens, int r0, int r1,
                            float* y) {
  const size_t ldx = m.cols, ldy = m.rows;
  rows_tiled(m, x, tokens, r0, r1, y, [&](int nt, const int8_t* wr, const float* xt, float sc, float* yt) {
    switch (nt) {
      case 1: row_avx2<1>(wr, xt, ldx, m.cols, sc, yt, ldy); break;
      case 2: row_avx2<2>(wr, xt, ldx, m.cols, sc, yt, ldy); break;
      case 3: row_avx2<3>(wr, xt, ldx, m.cols, sc, yt, ldy); break;
      default: row_avx2<4>(wr, xt, ldx, m.cols, sc, yt, ldy); break;
    }
  });
}

}  // namespace detail

void q8_gemm(const Q8Matrix& m, const float* x, int tokens, float* y) {
  BWLA_CHECK(m.rows > 0 && m.cols > 0 && m.stride >= (size_t)m.cols && tokens >= 0,
             "q8_gemm: bad shape rows={} cols={} stride={} tokens={}", m.rows, m.cols, m.stride,
             tokens);
  if (tokens == 0) return;
  const auto fn = kernels().q8_rows;
  if ((size_t)m.rows * m.cols < (1u << 16)) {
    fn(m, x, tokens, 0, m.rows, y);
    return;
  }
  detail::for_row_ranges(m.rows, [&](int r0, int r1) { fn(m, x, tokens, r0, r1, y); });
}

}  // namespace bwla
