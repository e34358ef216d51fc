// AVX-512 bit-serial inner loop of binary_gemm (needs AVX512_VPOPCNTDQ).
//
// The activations of a token are split into bit planes: plane b holds bit b of
// every q_tj, packed like the weights (bit j%64 of word j/64). Then
//   S_it = Σ_j m_ij·q_tj = Σ_b 2^b · popcount(m_i & plane_b).
// Per 512 weights and plane: vpandq, vpopcntq, vpaddq, with a 64-bit
// accumulator per (row, plane); the planes are weighted once per row at the end.
// No mask registers are involved, so at ≤ 6-bit activations this streams
// weights faster than the byte-expanding kernels (decode GEMV).
// GCC 12 reports its own _mm512_undefined_* placeholders inside the reduce intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/aligned.h"
#include "kernels/binary_gemm.h"
#include "kernels/prefetch.h"

#define BWLA_TPOP __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq")))

namespace bwla::detail {
namespace {

// planes[(t*bits + b) * pstride + w] for words w < nchunks*8 (zero beyond nwords).
BWLA_TPOP void build_planes(const SumsArgs& a, int bits, size_t pstride, uint64_t* planes) {
  for (int t = 0; t < a.tokens; ++t) {
    const uint8_t* q = a.q + (size_t)t * a.qstride;
    uint64_t* p = planes + (size_t)t * bits * pstride;
    for (size_t w = 0; w < pstride; ++w) {
      if ((int)w < a.nwords) {
        const __m512i x = _mm512_loadu_si512((const void*)(q + 64 * w));
        for (int b = 0; b < bits; ++b)
          p[b * pstride + w] = _cvtmask64_u64(_mm512_test_epi8_mask(x, _mm512_set1_epi8((char)(1 << b))));
      } else {
        for (int b = 0; b < bits; ++b) p[b * pstride + w] = 0;
      }
    }
  }
}

template <int B, int R>
BWLA_TPOP void bitserial_tile(const uint64_t* w, size_t ws, const uint64_t* planes,
                              size_t pstride, int nchunks, int32_t* S, size_t ss = 1) {
  __m512i acc[R * B];
#pragma GCC unroll 32
  for (int i = 0; i < R * B; ++i) acc[i] = _mm512_setzero_si512();
  for (int c = 0; c < nchunks; ++c) {
    __m512i P[B];
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) P[b] = _mm512_load_si512((const void*)(planes + b * pstride + 8 * c));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512i W = _mm512_load_si512((const void*)(w + r * ws + 8 * c));
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b)
        acc[r * B + b] = _mm512_add_epi64(acc[r * B + b], _mm512_popcnt_epi64(_mm512_and_si512(W, P[b])));
    }
  }
  for (int r = 0; r < R; ++r) {
    __m512i t = acc[r * B];
    for (int b = 1; b < B; ++b) t = _mm512_add_epi64(t, _mm512_slli_epi64(acc[r * B + b], b));
    S[r * ss] = (int32_t)_mm512_reduce_add_epi64(t);
  }
}

template <int B>
BWLA_TPOP void bitserial_run(const SumsArgs& a) {
  constexpr int R = B >= 16 ? 1 : 16 / B;
  const int nchunks = (a.nwords + 7) / 8;
  const size_t pstride = (size_t)nchunks * 8;
  thread_local AlignedBuffer<uint64_t> planes;
  const size_t need = (size_t)a.tokens * B * pstride;
  if (planes.size() < need) planes.resize(need, false);
  build_planes(a, B, pstride, planes.data());
  for (int t = 0; t < a.tokens; ++t) {
    const uint64_t* p = planes.data() + (size_t)t * B * pstride;
    int32_t* St = a.S + (size_t)t * a.ldS;
    int i = 0;
    if (a.tokens == 1 && R > 1 && a.rows >= 16 * R) {
      // Decode over many rows: the R rows of a tile come from R parts of the
      // range (row i of each), so R regions stream at once.
      const int Q = a.rows / R;
      for (int k = 0; k < Q; ++k) {
        for (int r = 0; r < R; ++r)
          prefetch_ahead(a.bits + (size_t)(r * Q + k) * a.wstride, (size_t)a.wstride * 8);
        bitserial_tile<B, R>(a.bits + (size_t)k * a.wstride, (size_t)Q * a.wstride, p, pstride,
                             nchunks, St + k, (size_t)Q);
      }
      i = R * Q;
    }
    for (; i + R <= a.rows; i += R) {
      prefetch_ahead(a.bits + i * a.wstride, (size_t)R * a.wstride * 8);
      bitserial_tile<B, R>(a.bits + i * a.wstride, a.wstride, p, pstride, nchunks, St + i);
    }
    for (; i < a.rows; ++i)
      bitserial_tile<B, 1>(a.bits + i * a.wstride, a.wstride, p, pstride, nchunks, St + i);
  }
}

}  // namespace

void masked_sums_avx512_bitserial(const SumsArgs& a) {
  // Planes needed: enough for qmax (bits of the activation format).
  int bits = 0;
  while ((1 << bits) - 1 < a.qmax) ++bits;
  switch (bits) {
    case 1: bitserial_run<1>(a); break;
    case 2: bitserial_run<2>(a); break;
    case 3: bitserial_run<3>(a); break;
    case 4: bitserial_run<4>(a); break;
    case 5: bitserial_run<5>(a); break;
    case 6: bitserial_run<6>(a); break;
    case 7: bitserial_run<7>(a); break;
    default: bitserial_run<8>(a); break;
  }
}

}  // namespace bwla::detail
