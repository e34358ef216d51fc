#include "kernels/rc_gemm.h"

// GCC 12 reports its own _mm512_undefined_* placeholders inside the reduce intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "core/error.h"
#include "kernels/binary_gemm.h"  // detail::for_row_ranges
#include "kernels/dispatch.h"
#include "kernels/simd_sum.h"

#define BWLA_T256 __attribute__((target("avx2,fma")))
#define BWLA_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

namespace bwla {

void RcMatrix::index_salient() {
  unit_c = std::all_of(c.begin(), c.end(), [](float v) { return v == 1.0f; });
  sal_cols.clear();
  sal_start.assign(blocks + 1, 0);
  for (int j = 0; j < cols; ++j)
    if (is_salient(j)) sal_cols.push_back(j);
  nsal = (int)sal_cols.size();
  words2 = (nsal + 63) / 64;
  for (int b = 0, t = 0; b < blocks; ++b) {
    sal_start[b] = t;
    while (t < nsal && sal_cols[t] < (b + 1) * block_cols) ++t;
    sal_start[b + 1] = t;
  }
}

float RcMatrix::weight(int i, int j) const {
  const int b = j / block_cols;
  const float s1 = bit(sign, i, j) ? 1.0f : -1.0f;
  if (is_salient(j)) {
    const int t = (int)(std::lower_bound(sal_cols.begin(), sal_cols.end(), j) - sal_cols.begin());
    const float s2 = (sign2[(size_t)i * words2 + (t >> 6)] >> (t & 63)) & 1 ? 1.0f : -1.0f;
    return A(0, i, b) * c[j] * s1 + A(1, i, b) * c[(size_t)cols + j] * s2 + M(0, i, b);
  }
  if (bit(sparse, i, j)) return A(3, i, b) * c[3 * (size_t)cols + j] * s1 + M(2, i, b);
  return A(2, i, b) * c[2 * (size_t)cols + j] * s1 + M(1, i, b);
}

void rc_prepare(const RcMatrix& m, const float* x, int tokens, RcActs& o) {
  o.tokens = tokens;
  o.stride = m.words * 64;
  const size_t n = (size_t)tokens * o.stride;
  for (AlignedBuffer<float>* b : {&o.x, &o.x0, &o.x2, &o.x3})
    if (b->size() < n) b->resize(n);
  o.g.resize((size_t)tokens * m.nsal);
  o.ublk.resize((size_t)tokens * m.blocks);
  o.usal.resize((size_t)tokens * m.blocks);
  o.gsum.resize((size_t)tokens * m.blocks);
  const float* c0 = m.c.data();
  const float* c1 = c0 + m.cols;
  const float* c2 = c1 + m.cols;
  const float* c3 = c2 + m.cols;
  for (int t = 0; t < tokens; ++t) {
    const float* xt = x + (size_t)t * m.cols;
    float *px = o.x.data() + (size_t)t * o.stride, *p0 = o.x0.data() + (size_t)t * o.stride,
          *p2 = o.x2.data() + (size_t)t * o.stride, *p3 = o.x3.data() + (size_t)t * o.stride;
    for (int j = 0; j < m.cols; ++j) {
      px[j] = xt[j];
      p0[j] = c0[j] * xt[j];
      p2[j] = c2[j] * xt[j];
      p3[j] = c3[j] * xt[j];
    }
    for (int j = m.cols; j < o.stride; ++j) px[j] = p0[j] = p2[j] = p3[j] = 0.0f;
    float* gt = o.g.data() + (size_t)t * m.nsal;
    for (int k = 0; k < m.nsal; ++k) gt[k] = c1[m.sal_cols[k]] * xt[m.sal_cols[k]];
    for (int b = 0; b < m.blocks; ++b) {
      double ub = 0, us = 0, gs = 0;
      const int j1 = std::min(m.cols, (b + 1) * m.block_cols);
      for (int j = b * m.block_cols; j < j1; ++j) ub += xt[j];
      for (int k = m.sal_start[b]; k < m.sal_start[b + 1]; ++k) us += xt[m.sal_cols[k]], gs += gt[k];
      o.ublk[(size_t)t * m.blocks + b] = (float)ub;
      o.usal[(size_t)t * m.blocks + b] = (float)us;
      o.gsum[(size_t)t * m.blocks + b] = (float)gs;
    }
  }
}

namespace {

// The block terms that are not vector sums: μ_0·U_sal + μ_1·(U_blk − U_sal)
// and the second salient plane a_1·T_1 (T_1 = 2·Σ_{s2 set} g − Σ g, at most
// the block's salient columns, in column order).
inline float rc_scalar_terms(const RcMatrix& m, const RcActs& a, int i, int t, int b) {
  const size_t tb = (size_t)t * m.blocks + b;
  float r = m.M(0, i, b) * a.usal[tb] + m.M(1, i, b) * (a.ublk[tb] - a.usal[tb]);
  const int k0 = m.sal_start[b], k1 = m.sal_start[b + 1];
  if (k1 > k0) {
    const uint64_t* s2 = m.sign2.data() + (size_t)i * m.words2;
    const float* g = a.g.data() + (size_t)t * m.nsal;
    float pos = 0;  // branchless: the signs are random, a branch mispredicts half the time
    for (int k = k0; k < k1; ++k) pos += g[k] * (float)((s2[k >> 6] >> (k & 63)) & 1);
    r += m.A(1, i, b) * (2.0f * pos - a.gsum[tb]);
  }
  return r;
}

}  // namespace

namespace detail {

void rc_rows_scalar(const RcMatrix& m, const RcActs& a, int r0, int r1, float* y) {
  for (int i = r0; i < r1; ++i)
    for (int t = 0; t < a.tokens; ++t) {
      const float* x = a.x.data() + (size_t)t * a.stride;
      double s = 0;
      for (int j = 0; j < m.cols; ++j) s += (double)m.weight(i, j) * x[j];
      y[(size_t)t * m.rows + i] = (float)s;
    }
}

// Byte h of a mask word as 8 lane masks (all ones where the bit is set).
BWLA_T256 static inline __m256 lanes(uint64_t word, int h, __m256i sel) {
  const __m256i v = _mm256_set1_epi32((int)((word >> (8 * h)) & 0xff));
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(v, sel), sel));
}

BWLA_T256 void rc_rows_avx2(const RcMatrix& m, const RcActs& a, int r0, int r1, float* y) {
  const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 neg = _mm256_set1_ps(-0.0f);
  const __m256 ones = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  const int bw = m.block_cols / 64;
  for (int i = r0; i < r1; ++i) {
    const uint64_t* S = m.sign.data() + (size_t)i * m.words;
    const uint64_t* P = m.sparse.data() + (size_t)i * m.words;
    for (int t = 0; t < a.tokens; ++t) {
      const size_t to = (size_t)t * a.stride;
      __m256 tot = _mm256_setzero_ps();
      float st = 0;
      for (int b = 0; b < m.blocks; ++b) {
        __m256 A0 = _mm256_setzero_ps(), A2 = A0, A3 = A0, U = A0;
        const int w1 = std::min(m.words, (b + 1) * bw);
        for (int w = b * bw; w < w1; ++w) {
          const uint64_t sal = m.salient[w], s = S[w], sp = P[w];
          for (int h = 0; h < 8; ++h) {
            const size_t off = to + (size_t)w * 64 + 8 * h;
            const __m256 flip = _mm256_andnot_ps(lanes(s, h, sel), neg);  // −0 where the sign is −1
            const __m256 ml = lanes(sal, h, sel), mp = lanes(sp, h, sel);
            const __m256 mc = _mm256_andnot_ps(_mm256_or_ps(ml, mp), ones);
            A0 = _mm256_add_ps(A0, _mm256_and_ps(ml, _mm256_xor_ps(_mm256_load_ps(a.x0.data() + off), flip)));
            A2 = _mm256_add_ps(A2, _mm256_and_ps(mc, _mm256_xor_ps(_mm256_load_ps(a.x2.data() + off), flip)));
            A3 = _mm256_add_ps(A3, _mm256_and_ps(mp, _mm256_xor_ps(_mm256_load_ps(a.x3.data() + off), flip)));
            U = _mm256_add_ps(U, _mm256_and_ps(mp, _mm256_load_ps(a.x.data() + off)));
          }
        }
        tot = _mm256_fmadd_ps(_mm256_set1_ps(m.A(0, i, b)), A0, tot);
        tot = _mm256_fmadd_ps(_mm256_set1_ps(m.A(2, i, b)), A2, tot);
        tot = _mm256_fmadd_ps(_mm256_set1_ps(m.A(3, i, b)), A3, tot);
        tot = _mm256_fmadd_ps(_mm256_set1_ps(m.M(2, i, b) - m.M(1, i, b)), U, tot);
        st += rc_scalar_terms(m, a, i, t, b);
      }
      y[(size_t)t * m.rows + i] = hsum256(tot) + st;
    }
  }
}

// Two accumulator sets (even / odd 16-column chunks) halve the add-latency
// chains; no branches on the masks (salient and sparse lanes are random).
// UnitC: every column scale is 1 (the column-group binarizers other than
// ARB-RC), so one load and one sign flip serve all three groups.
template <bool UnitC>
BWLA_T512 void rc_rows_avx512_t(const RcMatrix& m, const RcActs& a, int r0, int r1, float* y) {
  const __m512 zero = _mm512_setzero_ps();
  const int bw = m.block_cols / 64;
  for (int i = r0; i < r1; ++i) {
    const uint64_t* S = m.sign.data() + (size_t)i * m.words;
    const uint64_t* P = m.sparse.data() + (size_t)i * m.words;
    for (int t = 0; t < a.tokens; ++t) {
      const size_t to = (size_t)t * a.stride;
      const float *x = a.x.data() + to, *x0 = a.x0.data() + to, *x2 = a.x2.data() + to,
                  *x3 = a.x3.data() + to;
      __m512 tot = zero;
      float st = 0;
      for (int b = 0; b < m.blocks; ++b) {
        __m512 A0[2] = {zero, zero}, A2[2] = {zero, zero}, A3[2] = {zero, zero}, U[2] = {zero, zero};
        const int w1 = std::min(m.words, (b + 1) * bw);
        for (int w = b * bw; w < w1; ++w) {
          const uint64_t sal = m.salient[w], s = S[w], sp = P[w], conc = ~(sal | sp);
#pragma GCC unroll 4
          for (int h = 0; h < 4; ++h) {
            const int e = h & 1;
            const size_t off = (size_t)w * 64 + 16 * h;
            const __mmask16 kneg = (__mmask16)~(s >> (16 * h));
            const __mmask16 kl = (__mmask16)(sal >> (16 * h)), kp = (__mmask16)(sp >> (16 * h)),
                            kc = (__mmask16)(conc >> (16 * h));
            const __m512 v = _mm512_load_ps(x + off);
            U[e] = _mm512_mask_add_ps(U[e], kp, U[e], v);
            if (UnitC) {
              const __m512 sv = _mm512_mask_sub_ps(v, kneg, zero, v);
              A0[e] = _mm512_mask_add_ps(A0[e], kl, A0[e], sv);
              A2[e] = _mm512_mask_add_ps(A2[e], kc, A2[e], sv);
              A3[e] = _mm512_mask_add_ps(A3[e], kp, A3[e], sv);
            } else {
              const __m512 v0 = _mm512_load_ps(x0 + off), v2 = _mm512_load_ps(x2 + off),
                           v3 = _mm512_load_ps(x3 + off);
              A0[e] = _mm512_mask_add_ps(A0[e], kl, A0[e], _mm512_mask_sub_ps(v0, kneg, zero, v0));
              A2[e] = _mm512_mask_add_ps(A2[e], kc, A2[e], _mm512_mask_sub_ps(v2, kneg, zero, v2));
              A3[e] = _mm512_mask_add_ps(A3[e], kp, A3[e], _mm512_mask_sub_ps(v3, kneg, zero, v3));
            }
          }
        }
        tot = _mm512_fmadd_ps(_mm512_set1_ps(m.A(0, i, b)), _mm512_add_ps(A0[0], A0[1]), tot);
        tot = _mm512_fmadd_ps(_mm512_set1_ps(m.A(2, i, b)), _mm512_add_ps(A2[0], A2[1]), tot);
        tot = _mm512_fmadd_ps(_mm512_set1_ps(m.A(3, i, b)), _mm512_add_ps(A3[0], A3[1]), tot);
        tot = _mm512_fmadd_ps(_mm512_set1_ps(m.M(2, i, b) - m.M(1, i, b)), _mm512_add_ps(U[0], U[1]),
                              tot);
        st += rc_scalar_terms(m, a, i, t, b);
      }
      y[(size_t)t * m.rows + i] = _mm512_reduce_add_ps(tot) + st;
    }
  }
}

BWLA_T512 void rc_rows_avx512(const RcMatrix& m, const RcActs& a, int r0, int r1, float* y) {
  if (m.unit_c)
    rc_rows_avx512_t<true>(m, a, r0, r1, y);
  else
    rc_rows_avx512_t<false>(m, a, r0, r1, y);
}

}  // namespace detail

void rc_gemm(const RcMatrix& m, const RcActs& a, float* y) {
  BWLA_CHECK(m.rows > 0 && m.cols > 0 && a.stride == m.words * 64 && a.tokens >= 0,
             "rc_gemm: bad shape rows={} cols={} stride={} tokens={}", m.rows, m.cols, a.stride,
             a.tokens);
  if (a.tokens == 0) return;
  const auto fn = kernels().rc_rows;
  if ((size_t)m.rows * m.cols < (1u << 16)) {
    fn(m, a, 0, m.rows, y);
    return;
  }
  detail::for_row_ranges(m.rows, [&](int r0, int r1) { fn(m, a, r0, r1, y); });
}

}  // namespace bwla
