#include "kernels/panel_gemv.h"
#include "kernels/dispatch.h"

#include <immintrin.h>

#include "core/cpu.h"

namespace bwla {

namespace detail {

void panel_gemv_scalar(const float* P, const float* x, int kp, int n_out, float* y) {
  float acc[64] = {};
  for (int k = 0; k < kp; ++k) {
    const float xk = x[k];
    const float* r = P + (size_t)k * 64;
    for (int i = 0; i < 64; ++i) acc[i] += xk * r[i];
  }
  for (int i = 0; i < n_out; ++i) y[i] = acc[i];
}

__attribute__((target("avx2,fma"))) void panel_gemv_avx2(const float* P, const float* x, int kp,
                                                        int n_out, float* y) {
  __m256 a[8];
  for (auto& v : a) v = _mm256_setzero_ps();
  for (int k = 0; k < kp; ++k) {
    const __m256 xk = _mm256_broadcast_ss(x + k);
    const float* r = P + (size_t)k * 64;
    for (int v = 0; v < 8; ++v) a[v] = _mm256_fmadd_ps(xk, _mm256_loadu_ps(r + 8 * v), a[v]);
  }
  alignas(32) float t[64];
  for (int v = 0; v < 8; ++v) _mm256_store_ps(t + 8 * v, a[v]);
  for (int i = 0; i < n_out; ++i) y[i] = t[i];
}

__attribute__((target("avx512f"))) void panel_gemv_avx512(const float* P, const float* x, int kp,
                                                         int n_out, float* y) {
  // Two k per step into separate accumulators: 8 independent FMA chains.
  __m512 a[8];
  for (auto& v : a) v = _mm512_setzero_ps();
  int k = 0;
  for (; k + 2 <= kp; k += 2) {
    const __m512 x0 = _mm512_set1_ps(x[k]), x1 = _mm512_set1_ps(x[k + 1]);
    const float* r = P + (size_t)k * 64;
    for (int v = 0; v < 4; ++v) {
      a[v] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(r + 16 * v), a[v]);
      a[4 + v] = _mm512_fmadd_ps(x1, _mm512_loadu_ps(r + 64 + 16 * v), a[4 + v]);
    }
  }
  for (; k < kp; ++k) {
    const __m512 x0 = _mm512_set1_ps(x[k]);
    for (int v = 0; v < 4; ++v)
      a[v] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(P + (size_t)k * 64 + 16 * v), a[v]);
  }
  alignas(64) float t[64];
  for (int v = 0; v < 4; ++v) _mm512_store_ps(t + 16 * v, _mm512_add_ps(a[v], a[4 + v]));
  for (int i = 0; i < n_out; ++i) y[i] = t[i];
}

void panel_gemv(const float* P, const float* x, int kp, int n_out, float* y) {
  kernels().panel_gemv(P, x, kp, n_out, y);
}

}  // namespace detail

}  // namespace bwla
