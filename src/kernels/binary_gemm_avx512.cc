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
//   64-bit accumulators (K = 17 at 4 bits, 4 at 6, 1 at 8). Kept as an option:
//   measured slower than Vnni / BitSerial here (mask-register loads are the limit).
// The hot tiles (2 rows × 8 tokens, 8 rows × 1 token) are unrolled by hand with an
// inline-asm vpdpbusd: with arrays + intrinsics GCC 12 copies every accumulator.
// GCC 12 reports its own _mm512_undefined_* placeholders inside the reduce intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "kernels/binary_gemm.h"
#include "kernels/prefetch.h"

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

// acc += Σ_4 a(u8)·b(s8). Inline asm keeps the accumulator in place: GCC 12 treats the
// intrinsic as three-operand and adds a register copy (plus spills) per instruction.
BWLA_T512 inline void dpbusd(__m512i& acc, __m512i a_u8, __m512i b_s8) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a_u8), "v"(b_s8));
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

// Hand-unrolled hot tiles with named accumulators (GCC keeps them in registers).
#define BWLA_DP(acc, x, w) dpbusd(acc, x, w)

// 2 rows × 8 tokens (prefill).
BWLA_T512 void vnni_tile_2x8(const uint64_t* w, size_t ws, const uint8_t* q, size_t qs,
                             int nwords, int32_t* S, size_t ldS) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
          a7 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
  const uint64_t* w1 = w + ws;
  for (int k = 0; k < nwords; ++k) {
    const __m512i W0 = _mm512_movm_epi8(_cvtu64_mask64(w[k]));
    const __m512i W1 = _mm512_movm_epi8(_cvtu64_mask64(w1[k]));
    const uint8_t* p = q + 64 * (size_t)k;
#define BWLA_STEP(t, A, B)                                                \
  {                                                                       \
    const __m512i x = _mm512_loadu_si512((const void*)(p + (t) * qs));    \
    BWLA_DP(A, x, W0);                                                    \
    BWLA_DP(B, x, W1);                                                    \
  }
    BWLA_STEP(0, a0, b0) BWLA_STEP(1, a1, b1) BWLA_STEP(2, a2, b2) BWLA_STEP(3, a3, b3)
    BWLA_STEP(4, a4, b4) BWLA_STEP(5, a5, b5) BWLA_STEP(6, a6, b6) BWLA_STEP(7, a7, b7)
#undef BWLA_STEP
  }
  const __m512i v[16] = {a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5, a6, b6, a7, b7};
  alignas(64) int32_t s[16];
  _mm512_store_si512((void*)s, _mm512_sub_epi32(_mm512_setzero_si512(), reduce16(v)));
  for (int t = 0; t < 8; ++t) {
    S[t * ldS] = s[2 * t];
    S[t * ldS + 1] = s[2 * t + 1];
  }
}

// 8 rows × 1 token (decode GEMV).
BWLA_T512 void vnni_tile_8x1(const uint64_t* w, size_t ws, const uint8_t* q, size_t qs,
                             int nwords, int32_t* S, size_t ldS) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
          a7 = a0;
  for (int k = 0; k < nwords; ++k) {
    const __m512i x = _mm512_loadu_si512((const void*)(q + 64 * (size_t)k));
#define BWLA_ROW(r, A) BWLA_DP(A, x, _mm512_movm_epi8(_cvtu64_mask64(w[(r) * ws + k])));
    BWLA_ROW(0, a0) BWLA_ROW(1, a1) BWLA_ROW(2, a2) BWLA_ROW(3, a3)
    BWLA_ROW(4, a4) BWLA_ROW(5, a5) BWLA_ROW(6, a6) BWLA_ROW(7, a7)
#undef BWLA_ROW
  }
  const __m512i z = _mm512_setzero_si512();
  const __m512i v[16] = {a0, a1, a2, a3, a4, a5, a6, a7, z, z, z, z, z, z, z, z};
  alignas(64) int32_t s[16];
  _mm512_store_si512((void*)s, _mm512_sub_epi32(_mm512_setzero_si512(), reduce16(v)));
  for (int r = 0; r < 8; ++r) S[r] = s[r];
}
#undef BWLA_DP

template <int R, int T>
BWLA_T512 void vnni_rows(const SumsArgs& a, int t0) {
  int i = 0;
  for (; i + R <= a.rows; i += R) {
    const uint64_t* w = a.bits + i * a.wstride;
    const uint8_t* q = a.q + t0 * a.qstride;
    int32_t* S = a.S + t0 * a.ldS + i;
    prefetch_ahead(w, (size_t)R * a.wstride * 8);
    if constexpr (R == 2 && T == 8)
      vnni_tile_2x8(w, a.wstride, q, a.qstride, a.nwords, S, a.ldS);
    else if constexpr (R == 8 && T == 1)
      vnni_tile_8x1(w, a.wstride, q, a.qstride, a.nwords, S, a.ldS);
    else
      vnni_tile<R, T>(w, a.wstride, q, a.qstride, a.nwords, S, a.ldS);
  }
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

// Decode (one token) over many rows: 8 rows per step, two consecutive rows from
// each quarter of the range, so the core streams four regions at once (one
// sequential stream leaves much of the read bandwidth unused).
BWLA_T512 void vnni_streams_1t(const SumsArgs& a) {
  const int Q = a.rows / 4 / 2 * 2;
  const uint8_t* q = a.q;
  for (int i = 0; i < Q; i += 2) {
    const uint64_t* w[4];
    for (int s = 0; s < 4; ++s) {
      w[s] = a.bits + (size_t)(s * Q + i) * a.wstride;
      prefetch_ahead(w[s], 2 * a.wstride * 8);
    }
    __m512i acc[8];
    for (auto& v : acc) v = _mm512_setzero_si512();
    for (int k = 0; k < a.nwords; ++k) {
      const __m512i x = _mm512_loadu_si512((const void*)(q + 64 * (size_t)k));
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        dpbusd(acc[2 * s], x, _mm512_movm_epi8(_cvtu64_mask64(w[s][k])));
        dpbusd(acc[2 * s + 1], x, _mm512_movm_epi8(_cvtu64_mask64(w[s][a.wstride + k])));
      }
    }
    const __m512i z = _mm512_setzero_si512();
    const __m512i v[16] = {acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7],
                           z,      z,      z,      z,      z,      z,      z,      z};
    alignas(64) int32_t r[16];
    _mm512_store_si512((void*)r, _mm512_sub_epi32(_mm512_setzero_si512(), reduce16(v)));
    for (int s = 0; s < 4; ++s) {
      a.S[s * Q + i] = r[2 * s];
      a.S[s * Q + i + 1] = r[2 * s + 1];
    }
  }
  for (int i = 4 * Q; i < a.rows; ++i)
    vnni_tile<1, 1>(a.bits + (size_t)i * a.wstride, a.wstride, q, a.qstride, a.nwords, a.S + i, a.ldS);
}

}  // namespace

void masked_sums_avx512_vnni(const SumsArgs& a) {
  if (a.tokens == 1 && a.rows >= 64) {
    vnni_streams_1t(a);
    return;
  }
  for (int t0 = 0; t0 < a.tokens; t0 += 8) {
    switch (std::min(8, a.tokens - t0)) {
      case 1: vnni_rows<8, 1>(a, t0); break;
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
      case 1: maskadd_rows<4, 1>(a, t0, K); break;
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
