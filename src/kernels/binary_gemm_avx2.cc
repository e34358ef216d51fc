// AVX2 inner loop of binary_gemm: integer masked sums S_it = Σ_{m_ij=1} q_tj.
//
// Each 32-bit half of a weight word is broadcast, spread so byte i holds source
// byte i/8 (vpshufb), and compared with the bit pattern 1 << (i % 8), giving 32
// bytes of 0 / −1. vpmaddubsw(q, mask) yields −(q_a + q_b) per 16-bit lane
// (≥ −510, no saturation); 64 of those fit an int16 accumulator, after which
// vpmaddwd with −1 widens to positive int32 sums. One mask serves T tokens.
#include <immintrin.h>

#include <algorithm>

#include "kernels/binary_gemm.h"

#define BWLA_T256 __attribute__((target("avx2,fma")))

namespace bwla::detail {
namespace {

BWLA_T256 inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

template <int R, int T>
BWLA_T256 void avx2_tile(const uint64_t* w, size_t ws, const uint8_t* q, size_t qs, int nwords,
                         int32_t* S, size_t ldS) {
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ull);
  const __m256i neg1 = _mm256_set1_epi16(-1);
  __m256i a16[R * T], a32[R * T];
  for (int i = 0; i < R * T; ++i) a16[i] = a32[i] = _mm256_setzero_si256();
  const int nhalf = 2 * nwords;
  for (int h0 = 0; h0 < nhalf; h0 += 64) {
    const int h1 = std::min(nhalf, h0 + 64);
    for (int h = h0; h < h1; ++h) {
      __m256i M[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const uint32_t b = reinterpret_cast<const uint32_t*>(w + r * ws)[h];
        const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)b), spread);
        M[r] = _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
      }
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256i x = _mm256_loadu_si256((const __m256i*)(q + t * qs + 32 * (size_t)h));
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
          a16[t * R + r] = _mm256_add_epi16(a16[t * R + r], _mm256_maddubs_epi16(x, M[r]));
      }
    }
    for (int i = 0; i < R * T; ++i) {
      a32[i] = _mm256_add_epi32(a32[i], _mm256_madd_epi16(a16[i], neg1));
      a16[i] = _mm256_setzero_si256();
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) S[t * ldS + r] = hsum_epi32(a32[t * R + r]);
}

template <int R, int T>
BWLA_T256 void avx2_rows(const SumsArgs& a, int t0) {
  int i = 0;
  for (; i + R <= a.rows; i += R)
    avx2_tile<R, T>(a.bits + i * a.wstride, a.wstride, a.q + t0 * a.qstride, a.qstride, a.nwords,
                    a.S + t0 * a.ldS + i, a.ldS);
  for (; i < a.rows; ++i)
    avx2_tile<1, T>(a.bits + i * a.wstride, a.wstride, a.q + t0 * a.qstride, a.qstride, a.nwords,
                    a.S + t0 * a.ldS + i, a.ldS);
}

}  // namespace

void masked_sums_avx2(const SumsArgs& a) {
  for (int t0 = 0; t0 < a.tokens; t0 += 4) {
    switch (std::min(4, a.tokens - t0)) {
      case 1: avx2_rows<3, 1>(a, t0); break;
      case 2: avx2_rows<2, 2>(a, t0); break;
      case 3: avx2_rows<1, 3>(a, t0); break;
      default: avx2_rows<1, 4>(a, t0); break;
    }
  }
}

}  // namespace bwla::detail
