#include "kernels/lowrank.h"
#include "kernels/simd_sum.h"
#include "kernels/dispatch.h"

// GCC 12 reports its own _mm512_undefined_* placeholders inside the reduce intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <type_traits>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
#include "core/error.h"
#include "kernels/kron.h"  // detail::lincomb_*

#define BWLA_T256 __attribute__((target("avx2,fma")))
#define BWLA_T256C __attribute__((target("avx2,fma,f16c")))
#define BWLA_T512 __attribute__((target("avx512f,avx512bw,avx512vl")))

namespace bwla {
namespace detail {

float dot_scalar(const float* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

BWLA_T256 float dot_avx2(const float* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  s0 = _mm256_add_ps(s0, s1);
  float s = hsum256(s0);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

BWLA_T512 float dot_avx512(const float* a, const float* b, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i + 16 <= n; i += 16)
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < n) {
    const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

float dot_f16_scalar(const uint16_t* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += f16_to_f32(a[i]) * b[i];
  return s;
}

BWLA_T256C float dot_f16_avx2(const uint16_t* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(a + i))),
                         _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(a + i + 8))),
                         _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(a + i))),
                         _mm256_loadu_ps(b + i), s0);
  s0 = _mm256_add_ps(s0, s1);
  float s = hsum256(s0);
  for (; i < n; ++i) s += f16_to_f32(a[i]) * b[i];
  return s;
}

BWLA_T512 float dot_f16_avx512(const uint16_t* a, const float* b, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(a + i))),
                         _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(a + i + 16))),
                         _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i < n; i += 16) {
    const int m = n - i < 16 ? n - i : 16;
    const __mmask16 k = (__mmask16)((1u << m) - 1);
    s0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, a + i)),
                         _mm512_maskz_loadu_ps(k, b + i), s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

void axpy_rows_f16_scalar(const float* u, int terms, const uint16_t* rows, long rs, int n,
                          float* y) {
  for (int j = 0; j < n; ++j) {
    float s = 0.0f;
    for (int k = 0; k < terms; ++k) s += u[k] * f16_to_f32(rows[(size_t)k * rs + j]);
    y[j] += s;
  }
}

BWLA_T256C void axpy_rows_f16_avx2(const float* u, int terms, const uint16_t* rows, long rs,
                                   int n, float* y) {
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int k = 0; k < terms; ++k)
      acc = _mm256_fmadd_ps(_mm256_set1_ps(u[k]),
                            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(rows + (size_t)k * rs + j))),
                            acc);
    _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_loadu_ps(y + j), acc));
  }
  for (; j < n; ++j) {
    float s = 0.0f;
    for (int k = 0; k < terms; ++k) s += u[k] * f16_to_f32(rows[(size_t)k * rs + j]);
    y[j] += s;
  }
}

BWLA_T512 void axpy_rows_f16_avx512(const float* u, int terms, const uint16_t* rows, long rs,
                                    int n, float* y) {
  for (int j = 0; j < n; j += 16) {
    const int m = n - j < 16 ? n - j : 16;
    const __mmask16 msk = (__mmask16)((1u << m) - 1);
    __m512 acc = _mm512_setzero_ps();
    for (int k = 0; k < terms; ++k)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(u[k]),
                            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(msk, rows + (size_t)k * rs + j)),
                            acc);
    _mm512_mask_storeu_ps(y + j, msk, _mm512_add_ps(_mm512_maskz_loadu_ps(msk, y + j), acc));
  }
}

float dot_i8_scalar(const int8_t* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += (float)a[i] * b[i];
  return s;
}

BWLA_T256 float dot_i8_avx2(const int8_t* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  auto w8 = [](const int8_t* p) BWLA_T256 {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)));
  };
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(w8(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(w8(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(w8(a + i), _mm256_loadu_ps(b + i), s0);
  s0 = _mm256_add_ps(s0, s1);
  float s = hsum256(s0);
  for (; i < n; ++i) s += (float)a[i] * b[i];
  return s;
}

BWLA_T512 float dot_i8_avx512(const int8_t* a, const float* b, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(a + i)))),
                         _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(a + i + 16)))),
        _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i < n; i += 16) {
    const int m = n - i < 16 ? n - i : 16;
    const __mmask16 k = (__mmask16)((1u << m) - 1);
    s0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, a + i))),
                         _mm512_maskz_loadu_ps(k, b + i), s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

void axpy_rows_i8_scalar(const float* u, int terms, const int8_t* rows, long rs, int n, float* y) {
  for (int j = 0; j < n; ++j) {
    float s = 0.0f;
    for (int k = 0; k < terms; ++k) s += u[k] * (float)rows[(size_t)k * rs + j];
    y[j] += s;
  }
}

BWLA_T256 void axpy_rows_i8_avx2(const float* u, int terms, const int8_t* rows, long rs, int n,
                                 float* y) {
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int k = 0; k < terms; ++k)
      acc = _mm256_fmadd_ps(
          _mm256_set1_ps(u[k]),
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(rows + (size_t)k * rs + j)))),
          acc);
    _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_loadu_ps(y + j), acc));
  }
  for (; j < n; ++j) {
    float s = 0.0f;
    for (int k = 0; k < terms; ++k) s += u[k] * (float)rows[(size_t)k * rs + j];
    y[j] += s;
  }
}

BWLA_T512 void axpy_rows_i8_avx512(const float* u, int terms, const int8_t* rows, long rs, int n,
                                   float* y) {
  for (int j = 0; j < n; j += 16) {
    const int m = n - j < 16 ? n - j : 16;
    const __mmask16 msk = (__mmask16)((1u << m) - 1);
    __m512 acc = _mm512_setzero_ps();
    for (int k = 0; k < terms; ++k)
      acc = _mm512_fmadd_ps(
          _mm512_set1_ps(u[k]),
          _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(msk, rows + (size_t)k * rs + j))),
          acc);
    _mm512_mask_storeu_ps(y + j, msk, _mm512_add_ps(_mm512_maskz_loadu_ps(msk, y + j), acc));
  }
}

}  // namespace detail

namespace {
// y += A·(B·x) token by token (OpenMP over tokens when there are several):
// project(x_t, u) fills u[0..rank), expand(u, y_t) adds all `out` rows.
template <class Project, class Expand>
void add_per_token(const char* what, const float* x, int tokens, int in, int rank, int out,
                   float* y, Project project, Expand expand) {
  BWLA_CHECK(tokens >= 0 && in > 0 && rank >= 0 && out > 0, "{}: bad shape t={} in={} r={} out={}",
             what, tokens, in, rank, out);
  if (rank == 0 || tokens == 0) return;
#pragma omp parallel for schedule(static) if (tokens >= 4)
  for (int t = 0; t < tokens; ++t) {
    thread_local std::vector<float> u;
    u.resize((size_t)rank);
    project(x + (size_t)t * in, u.data());
    expand(u.data(), y + (size_t)t * out);
  }
}
}  // namespace

void lowrank_add(const float* x, int tokens, int in, const float* B, const float* At, int rank,
                 int out, float* y) {
  add_per_token(
      "lowrank_add", x, tokens, in, rank, out, y,
      [&](const float* xt, float* u) { lowrank_project(xt, in, B, 0, rank, u); },
      [&](const float* u, float* yt) { lowrank_expand(u, rank, At, out, 0, out, yt); });
}

void lowrank_add_f16(const float* x, int tokens, int in, const uint16_t* B, const uint16_t* At,
                     int rank, int out, float* y) {
  add_per_token(
      "lowrank_add_f16", x, tokens, in, rank, out, y,
      [&](const float* xt, float* u) { lowrank_project_f16(xt, in, B, 0, rank, u); },
      [&](const float* u, float* yt) { lowrank_expand_f16(u, rank, At, out, 0, out, yt); });
}

void lowrank_add_i8(const float* x, int tokens, int in, const int8_t* B, const int8_t* At,
                    const float* s, int rank, int out, float* y) {
  add_per_token(
      "lowrank_add_i8", x, tokens, in, rank, out, y,
      [&](const float* xt, float* u) { lowrank_project_i8(xt, in, B, s, 0, rank, u); },
      [&](const float* u, float* yt) { lowrank_expand_i8(u, rank, At, out, 0, out, yt); });
}

void lowrank_project_i8(const float* x, int in, const int8_t* B, const float* s, int k0, int k1,
                        float* u) {
  const auto dot = kernels().dot_i8;
  for (int k = k0; k < k1; ++k) u[k] = s[k] * dot(B + (size_t)k * in, x, in);
}

void lowrank_expand_i8(const float* u, int rank, const int8_t* At, int out, int r0, int r1,
                       float* y) {
  if (r1 <= r0 || rank == 0) return;
  kernels().axpy_rows_i8(u, rank, At + r0, out, r1 - r0, y + r0);
}

namespace {
template <class T>
void project_impl(const float* x, int in, const T* B, int k0, int k1, float* u) {
  const KernelTable& kt = kernels();
  for (int k = k0; k < k1; ++k) {
    if constexpr (std::is_same_v<T, float>)
      u[k] = kt.dot(B + (size_t)k * in, x, in);
    else
      u[k] = kt.dot_f16(B + (size_t)k * in, x, in);
  }
}
}  // namespace

void lowrank_project(const float* x, int in, const float* B, int k0, int k1, float* u) {
  project_impl(x, in, B, k0, k1, u);
}

void lowrank_project_f16(const float* x, int in, const uint16_t* B, int k0, int k1, float* u) {
  project_impl(x, in, B, k0, k1, u);
}

void lowrank_expand(const float* u, int rank, const float* At, int out, int r0, int r1, float* y) {
  if (r1 <= r0 || rank == 0) return;
  const auto lincomb = kernels().lincomb;
  thread_local std::vector<float> d;
  d.resize((size_t)(r1 - r0));
  lincomb(u, 1, rank, At + r0, out, r1 - r0, d.data());
  for (int i = r0; i < r1; ++i) y[i] += d[i - r0];
}

void lowrank_expand_f16(const float* u, int rank, const uint16_t* At, int out, int r0, int r1,
                        float* y) {
  if (r1 <= r0 || rank == 0) return;
  kernels().axpy_rows_f16(u, rank, At + r0, out, r1 - r0, y + r0);
}

namespace {
template <class T>
const T* as(const void* p) {
  return static_cast<const T*>(p);
}
const LowRankTraits kLowRankTraits[] = {
    {"f32", 4,
     [](const float* x, int n, int in, const void* B, const void* At, const float*, int r, int out,
        float* y) { lowrank_add(x, n, in, as<float>(B), as<float>(At), r, out, y); },
     [](const float* x, int in, const void* B, const float*, int k0, int k1, float* u) {
       lowrank_project(x, in, as<float>(B), k0, k1, u);
     },
     [](const float* u, int r, const void* At, int out, int r0, int r1, float* y) {
       lowrank_expand(u, r, as<float>(At), out, r0, r1, y);
     }},
    {"f16", 2,
     [](const float* x, int n, int in, const void* B, const void* At, const float*, int r, int out,
        float* y) { lowrank_add_f16(x, n, in, as<uint16_t>(B), as<uint16_t>(At), r, out, y); },
     [](const float* x, int in, const void* B, const float*, int k0, int k1, float* u) {
       lowrank_project_f16(x, in, as<uint16_t>(B), k0, k1, u);
     },
     [](const float* u, int r, const void* At, int out, int r0, int r1, float* y) {
       lowrank_expand_f16(u, r, as<uint16_t>(At), out, r0, r1, y);
     }},
    {"i8", 1,
     [](const float* x, int n, int in, const void* B, const void* At, const float* s, int r,
        int out, float* y) { lowrank_add_i8(x, n, in, as<int8_t>(B), as<int8_t>(At), s, r, out, y); },
     [](const float* x, int in, const void* B, const float* s, int k0, int k1, float* u) {
       lowrank_project_i8(x, in, as<int8_t>(B), s, k0, k1, u);
     },
     [](const float* u, int r, const void* At, int out, int r0, int r1, float* y) {
       lowrank_expand_i8(u, r, as<int8_t>(At), out, r0, r1, y);
     }},
};
}  // namespace

const LowRankTraits& lowrank_traits(LowRankDtype t) {
  const int i = (int)t;
  BWLA_ASSERT(i >= 0 && i < 3, "low-rank dtype {}", i);
  return kLowRankTraits[i];
}

}  // namespace bwla
