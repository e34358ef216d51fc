// AVX-512 inner loops of binary_gemm: integer masked sums S_it = Σ_{m_ij=1} q_tj.
//
// Vnni: a weight word (64 columns of one row) goes into a mask register and is
//   expanded to 64 bytes of 0 / −1 by vpmovm2b; vpdpbusd(acc, q, W) then adds
//   −(q_a + q_b + q_c + q_d) over each 4-byte group. One expansion serves T tokens.
//   R rows × T tokens accumulators; when R·T = 16 they are reduced together by a
//   transpose-and-add tree (45 ops instead of 16 horizontal reductions).
// MaskAdd: the weight word is the write-mask of a byte add: acc8 += q where the
//   bit is set (one op per 64 weights per token). Byte lanes overflow after
//   floor(255 / qmax) adds, so every K words they are widened with vpsadbw into
//   64-bit accumulators. Wins for ≤ 6-bit activations (K = 17 at 4 bits, 4 at 6).
// GCC 12 reports its own _mm512_undefined_* placeholders inside the reduce intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "kernels/binary_gemm.h"

#define BWLA_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

namespace bwla::detail {
namespace {

// Lane i of the result = sum of the 16 int32 lanes of v[i].
BWLA_T512 inline __m512i reduce16(const __m512i* v) {
  __m512i a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)
    a[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                            _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    b[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]),
                            _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 2; ++i)
    c[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(b[2 * i], b[2 * i + 1], 0x88),
                            _mm512_shuffle_i32x4(b[2 * i], b[2 * i + 1], 0xDD));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(c[0], c[1], 0x88),
                          _mm512_shuffle_i32x4(c[0], c[1], 0xDD));
}

template <int R, int T>
BWLA_T512 void vnni_tile(const uint64_t* w, size_t ws, const uint8_t* q, size_t qs, int nwords,
                         int32_t* S, size_t ldS) {
  __m512i acc[R * T];
#pragma GCC unroll 32
  for (int i = 0; i < R * T; ++i) acc[i] = _mm512_setzero_si512();
  for (int k = 0; k < nwords; ++k) {
    __m512i W[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) W[r] = _mm512_movm_epi8(_cvtu64_mask64(w[r * ws + k]));
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512i x = _mm512_loadu_si512((const void*)(q + t * qs + 64 * (size_t)k));
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[t * R + r] = _mm512_dpbusd_epi32(acc[t * R + r], x, W[r]);
    }
  }
  if constexpr (R * T == 16) {
    alignas(64) int32_t s[16];
    _mm512_store_si512((void*)s, _mm512_sub_epi32(_mm512_setzero_si512(), reduce16(acc)));
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) S[t * ldS + r] = s[t * R + r];
  } else {
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) S[t * ldS + r] = -_mm512_reduce_add_epi32(acc[t * R + r]);
  }
}

template <int R, int T>
BWLA_T512 void vnni_rows(const SumsArgs& a, int t0) {
  int i = 0;
  for (; i + R <= a.rows; i += R)
    vnni_tile<R, T>(a.bits + i * a.wstride, a.wstride, a.q + t0 * a.qstride, a.qstride, a.nwords,
                    a.S + t0 * a.ldS + i, a.ldS);
  for (; i < a.rows; ++i)
    vnni_tile<1, T>(a.bits + i * a.wstride, a.wstride, a.q + t0 * a.qstride, a.qstride, a.nwords,
                    a.S + t0 * a.ldS + i, a.ldS);
}

template <int R, int T>
BWLA_T512 void maskadd_tile(const uint64_t* w, size_t ws, const uint8_t* q, size_t qs, int nwords,
                            int K, int32_t* S, size_t ldS) {
  __m512i a8[R * T], a64[R * T];
#pragma GCC unroll 32
  for (int i = 0; i < R * T; ++i) a8[i] = a64[i] = _mm512_setzero_si512();
  for (int k0 = 0; k0 < nwords; k0 += K) {
    const int k1 = std::min(nwords, k0 + K);
    for (int k = k0; k < k1; ++k) {
      __mmask64 m[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) m[r] = _cvtu64_mask64(w[r * ws + k]);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m512i x = _mm512_loadu_si512((const void*)(q + t * qs + 64 * (size_t)k));
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
          a8[t * R + r] = _mm512_mask_add_epi8(a8[t * R + r], m[r], a8[t * R + r], x);
      }
    }
#pragma GCC unroll 32
    for (int i = 0; i < R * T; ++i) {
      a64[i] = _mm512_add_epi64(a64[i], _mm512_sad_epu8(a8[i], _mm512_setzero_si512()));
      a8[i] = _mm512_setzero_si512();
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) S[t * ldS + r] = (int32_t)_mm512_reduce_add_epi64(a64[t * R + r]);
}

template <int R, int T>
BWLA_T512 void maskadd_rows(const SumsArgs& a, int t0, int K) {
  int i = 0;
  for (; i + R <= a.rows; i += R)
    maskadd_tile<R, T>(a.bits + i * a.wstride, a.wstride, a.q + t0 * a.qstride, a.qstride,
                       a.nwords, K, a.S + t0 * a.ldS + i, a.ldS);
  for (; i < a.rows; ++i)
    maskadd_tile<1, T>(a.bits + i * a.wstride, a.wstride, a.q + t0 * a.qstride, a.qstride,
                       a.nwords, K, a.S + t0 * a.ldS + i, a.ldS);
}

}  // namespace

void masked_sums_avx512_vnni(const SumsArgs& a) {
  for (int t0 = 0; t0 < a.tokens; t0 += 8) {
    switch (std::min(8, a.tokens - t0)) {
      case 1: vnni_rows<16, 1>(a, t0); break;
      case 2: vnni_rows<8, 2>(a, t0); break;
      case 3: vnni_rows<5, 3>(a, t0); break;
      case 4: vnni_rows<4, 4>(a, t0); break;
      case 5: vnni_rows<3, 5>(a, t0); break;
      case 6: vnni_rows<2, 6>(a, t0); break;
      case 7: vnni_rows<2, 7>(a, t0); break;
      default: vnni_rows<2, 8>(a, t0); break;
    }
  }
}

void masked_sums_avx512_maskadd(const SumsArgs& a) {
  const int K = std::max(1, 255 / std::max(1, a.qmax));
  for (int t0 = 0; t0 < a.tokens; t0 += 8) {
    switch (std::min(8, a.tokens - t0)) {
      case 1: maskadd_rows<8, 1>(a, t0, K); break;
      case 2: maskadd_rows<4, 2>(a, t0, K); break;
      case 3: maskadd_rows<2, 3>(a, t0, K); break;
      case 4: maskadd_rows<2, 4>(a, t0, K); break;
      case 5: maskadd_rows<1, 5>(a, t0, K); break;
      case 6: maskadd_rows<1, 6>(a, t0, K); break;
      case 7: maskadd_rows<1, 7>(a, t0, K); break;
      default: maskadd_rows<1, 8>(a, t0, K); break;
    }
  }
}

}  // namespace bwla::detail
