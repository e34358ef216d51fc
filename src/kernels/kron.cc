#include "kernels/kron.h"
#include "kernels/dispatch.h"

#include <immintrin.h>

#include <vector>

#include "core/cpu.h"
#include "core/error.h"

#define BWLA_T256 __attribute__((target("avx2,fma")))
#define BWLA_T512 __attribute__((target("avx512f,avx512bw,avx512vl")))

namespace bwla {
namespace detail {

void lincomb_scalar(const float* coef, long cs, int terms, const float* rows, long rs, int n,
                    float* out) {
  for (int j = 0; j < n; ++j) out[j] = 0.0f;
  for (int c = 0; c < terms; ++c) {
    const float k = coef[c * cs];
    const float* r = rows + c * rs;
    for (int j = 0; j < n; ++j) out[j] += k * r[j];
  }
}

// Columns in blocks of 32 (4 × 8) kept in registers across all terms.
BWLA_T256 void lincomb_avx2(const float* coef, long cs, int terms, const float* rows, long rs,
                            int n, float* out) {
  int j = 0;
  for (; j + 32 <= n; j += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int c = 0; c < terms; ++c) {
      const __m256 k = _mm256_set1_ps(coef[c * cs]);
      const float* r = rows + c * rs + j;
      a0 = _mm256_fmadd_ps(k, _mm256_loadu_ps(r), a0);
      a1 = _mm256_fmadd_ps(k, _mm256_loadu_ps(r + 8), a1);
      a2 = _mm256_fmadd_ps(k, _mm256_loadu_ps(r + 16), a2);
      a3 = _mm256_fmadd_ps(k, _mm256_loadu_ps(r + 24), a3);
    }
    _mm256_storeu_ps(out + j, a0);
    _mm256_storeu_ps(out + j + 8, a1);
    _mm256_storeu_ps(out + j + 16, a2);
    _mm256_storeu_ps(out + j + 24, a3);
  }
  for (; j + 8 <= n; j += 8) {
    __m256 a0 = _mm256_setzero_ps();
    for (int c = 0; c < terms; ++c)
      a0 = _mm256_fmadd_ps(_mm256_set1_ps(coef[c * cs]), _mm256_loadu_ps(rows + c * rs + j), a0);
    _mm256_storeu_ps(out + j, a0);
  }
  for (; j < n; ++j) {
    float s = 0.0f;
    for (int c = 0; c < terms; ++c) s += coef[c * cs] * rows[c * rs + j];
    out[j] = s;
  }
}

// Columns in blocks of 64 (4 × 16); the tail uses masked loads/stores.
BWLA_T512 void lincomb_avx512(const float* coef, long cs, int terms, const float* rows, long rs,
                              int n, float* out) {
  int j = 0;
  for (; j + 64 <= n; j += 64) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int c = 0; c < terms; ++c) {
      const __m512 k = _mm512_set1_ps(coef[c * cs]);
      const float* r = rows + c * rs + j;
      a0 = _mm512_fmadd_ps(k, _mm512_loadu_ps(r), a0);
      a1 = _mm512_fmadd_ps(k, _mm512_loadu_ps(r + 16), a1);
      a2 = _mm512_fmadd_ps(k, _mm512_loadu_ps(r + 32), a2);
      a3 = _mm512_fmadd_ps(k, _mm512_loadu_ps(r + 48), a3);
    }
    _mm512_storeu_ps(out + j, a0);
    _mm512_storeu_ps(out + j + 16, a1);
    _mm512_storeu_ps(out + j + 32, a2);
    _mm512_storeu_ps(out + j + 48, a3);
  }
  for (; j < n; j += 16) {
    const int m = n - j < 16 ? n - j : 16;
    const __mmask16 mask = (__mmask16)((1u << m) - 1);
    __m512 a0 = _mm512_setzero_ps();
    for (int c = 0; c < terms; ++c)
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(coef[c * cs]),
                           _mm512_maskz_loadu_ps(mask, rows + c * rs + j), a0);
    _mm512_mask_storeu_ps(out + j, mask, a0);
  }
}

// NR output rows at once: out[r·os + j] = Σ_c coef[r·crs + c·ccs]·rows[c·rs + j].
// 64-column blocks (4 vectors, masked at the tail) × NR rows: NR·4 independent
// FMA chains, and each loaded row vector feeds NR FMAs.
template <int NR>
BWLA_T512 void lincomb_rows_avx512(const float* coef, long crs, long ccs, int terms,
                                   const float* rows, long rs, int n, float* out, long os) {
  for (int j = 0; j < n; j += 64) {
    __mmask16 m[4];
    for (int v = 0; v < 4; ++v) {
      const int w = n - j - 16 * v;
      m[v] = w >= 16 ? (__mmask16)0xFFFF : w > 0 ? (__mmask16)((1u << w) - 1) : (__mmask16)0;
    }
    __m512 acc[NR][4];
    for (int r = 0; r < NR; ++r)
      for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_ps();
    for (int c = 0; c < terms; ++c) {
      const float* rr = rows + c * rs + j;
      __m512 x[4];
      for (int v = 0; v < 4; ++v) x[v] = _mm512_maskz_loadu_ps(m[v], rr + 16 * v);
      for (int r = 0; r < NR; ++r) {
        const __m512 k = _mm512_set1_ps(coef[r * crs + c * ccs]);
        for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_fmadd_ps(k, x[v], acc[r][v]);
      }
    }
    for (int r = 0; r < NR; ++r)
      for (int v = 0; v < 4; ++v)
        if (m[v]) _mm512_mask_storeu_ps(out + r * os + j + 16 * v, m[v], acc[r][v]);
  }
}

// All `nrows` output rows of one product step: one at a time, or 4 at a time
// on AVX-512 (each coefficient broadcast once for 4 rows of registers).
void lincomb_block_avx512(const float* coef, long crs, long ccs, int nrows, int terms,
                          const float* rows, long rs, int n, float* out, long os) {
  int r = 0;
  for (; r + 4 <= nrows; r += 4)
    lincomb_rows_avx512<4>(coef + r * crs, crs, ccs, terms, rows, rs, n, out + r * os, os);
  for (; r < nrows; ++r)
    lincomb_rows_avx512<1>(coef + r * crs, crs, ccs, terms, rows, rs, n, out + r * os, os);
}
void lincomb_block_avx2(const float* coef, long crs, long ccs, int nrows, int terms,
                        const float* rows, long rs, int n, float* out, long os) {
  for (int r = 0; r < nrows; ++r) lincomb_avx2(coef + r * crs, ccs, terms, rows, rs, n, out + r * os);
}
void lincomb_block_scalar(const float* coef, long crs, long ccs, int nrows, int terms,
                          const float* rows, long rs, int n, float* out, long os) {
  for (int r = 0; r < nrows; ++r)
    lincomb_scalar(coef + r * crs, ccs, terms, rows, rs, n, out + r * os);
}

}  // namespace detail

void kron_apply(const float* x, float* y, int tokens, const float* R1, int n1, const float* R2,
                int n2) {
  BWLA_CHECK(tokens >= 0 && n1 > 0 && n2 > 0, "kron_apply: bad shape t={} n1={} n2={}", tokens,
             n1, n2);
  const auto lincomb_block = kernels().lincomb_block;
  const size_t n = (size_t)n1 * n2;
  // Tokens are independent: OpenMP over tokens (static) when there are enough.
#pragma omp parallel for schedule(static) if (tokens >= 8 && n >= 256)
  for (int t = 0; t < tokens; ++t) {
    thread_local std::vector<float> tmp;
    if (tmp.size() < n) tmp.resize(n);
    const float* V = x + (size_t)t * n;
    float* out = y + (size_t)t * n;
    // T = V·R2: T[a][:] = Σ_k V[a][k]·R2[k][:]
    lincomb_block(V, n2, 1, n1, n2, R2, n2, n2, tmp.data(), n2);
    // out = R1ᵀ·T: out[a][:] = Σ_c R1[c][a]·T[c][:]  (reads only tmp, so x may alias y)
    lincomb_block(R1, 1, n1, n1, n1, tmp.data(), n2, n2, out, n2);
  }
}

void kron_stage1(const float* x, float* tmp, int a0, int a1, const float* R2, int n2) {
  if (a1 <= a0) return;
  kernels().lincomb_block(x + (size_t)a0 * n2, n2, 1, a1 - a0, n2, R2, n2, n2,
                        tmp + (size_t)a0 * n2, n2);
}

void kron_stage2(const float* tmp, float* y, int a0, int a1, const float* R1, int n1, int n2) {
  if (a1 <= a0) return;
  kernels().lincomb_block(R1 + a0, 1, n1, a1 - a0, n1, tmp, n2, n2,
                        y + (size_t)a0 * n2, n2);
}

}  // namespace bwla
