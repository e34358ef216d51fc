// Dispatch, scalar reference and the shared float epilogue of binary_gemm.
#include "kernels/binary_gemm.h"

// GCC 12 false positives inside the AVX-512 conversion intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"

namespace bwla {

namespace detail {
void masked_sums_scalar(const SumsArgs& a) {
  for (int t = 0; t < a.tokens; ++t) {
    const uint8_t* q = a.q + (size_t)t * a.qstride;
    for (int i = 0; i < a.rows; ++i) {
      const uint64_t* w = a.bits + (size_t)i * a.wstride;
      int32_t s = 0;
      for (int k = 0; k < a.nwords; ++k) {
        const uint64_t word = w[k];
        for (int b = 0; b < 64; ++b)
          if ((word >> b) & 1) s += q[k * 64 + b];
      }
      a.S[(size_t)t * a.ldS + i] = s;
    }
  }
}
}  // namespace detail

const char* binary_kernel_name(BinaryKernel k) {
  switch (k) {
    case BinaryKernel::Auto: return "auto";
    case BinaryKernel::Scalar: return "scalar";
    case BinaryKernel::Avx2: return "avx2";
    case BinaryKernel::Avx512Vnni: return "avx512-vnni";
    case BinaryKernel::Avx512MaskAdd: return "avx512-maskadd";
    case BinaryKernel::Avx512BitSerial: return "avx512-bitserial";
  }
  return "?";
}

bool binary_kernel_available(BinaryKernel k) {
  return k == BinaryKernel::Auto || kernels().masked_sums[(int)k] != nullptr;
}

BinaryKernel default_binary_kernel(int act_bits, int tokens) {
  const KernelTable& kt = kernels();
  if (tokens > 1) return kt.binary_tokens;
  return act_bits <= 6 ? kt.binary_one_token : kt.binary_one_token_a8;
}

namespace {

void check_shapes(const PackedBinary& w, const QuantActs& a, int row_begin, int row_end) {
  BWLA_CHECK(w.cols == a.cols, "binary_gemm: weight cols {} != activation cols {}", w.cols,
             a.cols);
  BWLA_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= w.rows,
             "binary_gemm: bad row range [{}, {}) for {} rows", row_begin, row_end, w.rows);
  BWLA_CHECK(a.bits >= 1 && a.bits <= 8, "binary_gemm: activation bits {} not in [1, 8]", a.bits);
  BWLA_ASSERT(a.stride >= (w.cols + 63) / 64 * 64 && a.stride % 64 == 0, "stride {}", a.stride);
}

void run_sums(const PackedBinary& w, const QuantActs& a, int row_begin, int rows, int32_t* S,
              size_t ldS, BinaryKernel k) {
  if (rows <= 0 || a.tokens <= 0) return;
  if (k == BinaryKernel::Auto) k = default_binary_kernel(a.bits, a.tokens);
  BWLA_CHECK(binary_kernel_available(k), "binary kernel {} needs ISA above active {}",
             binary_kernel_name(k), isa_name(active_isa()));
  detail::SumsArgs args{w.row(row_begin), (size_t)w.words_per_row, a.q.data(), (size_t)a.stride,
                        (w.cols + 63) / 64, rows, a.tokens, a.qmax(), S, ldS};
  kernels().masked_sums[(int)k](args);
}

}  // namespace

void binary_masked_sums(const PackedBinary& w, const QuantActs& a, int32_t* S, int row_begin,
                        int row_end, BinaryKernel k) {
  if (row_end < 0) row_end = w.rows;
  check_shapes(w, a, row_begin, row_end);
  run_sums(w, a, row_begin, row_end - row_begin, S, (size_t)(row_end - row_begin), k);
}

namespace {
// y[r] = s·(α_i·sign_dot + μ_i·(Q − z·cols)) with sign_dot = 2·S − Q − z·(2·pc_i − cols),
// all in double (sign_dot is an exact integer there). The AVX-512 version runs
// the same double operations in the same order (this file is compiled without
// FMA contraction), so it rounds exactly like the scalar loop, which the
// portable build compiles for SSE2 (~3 % of 2-thread W1A6 decode).
struct Epilogue {
  const int32_t* S;
  const int32_t* pc;
  const float *alpha, *mu;
  int n;
  double s, Q, z, cols;
  float* y;
};

void epilogue_scalar(const Epilogue& e, int r0) {
  const double mu_term = e.Q - e.z * e.cols;
  for (int r = r0; r < e.n; ++r) {
    const double sign_dot = 2.0 * e.S[r] - e.Q - e.z * (2.0 * e.pc[r] - e.cols);
    e.y[r] = (float)(e.s * ((double)e.alpha[r] * sign_dot + (double)e.mu[r] * mu_term));
  }
}

__attribute__((target("avx512f"))) void epilogue_avx512(const Epilogue& e) {
  const __m512d two = _mm512_set1_pd(2.0), Q = _mm512_set1_pd(e.Q), z = _mm512_set1_pd(e.z),
                cols = _mm512_set1_pd(e.cols), s = _mm512_set1_pd(e.s),
                mu_term = _mm512_set1_pd(e.Q - e.z * e.cols);
  int r = 0;
  for (; r + 8 <= e.n; r += 8) {
    const __m512d S = _mm512_cvtepi32_pd(_mm256_loadu_si256((const __m256i*)(e.S + r)));
    const __m512d pc = _mm512_cvtepi32_pd(_mm256_loadu_si256((const __m256i*)(e.pc + r)));
    const __m512d al = _mm512_cvtps_pd(_mm256_loadu_ps(e.alpha + r));
    const __m512d mu = _mm512_cvtps_pd(_mm256_loadu_ps(e.mu + r));
    const __m512d sd = _mm512_sub_pd(_mm512_sub_pd(_mm512_mul_pd(two, S), Q),
                                     _mm512_mul_pd(z, _mm512_sub_pd(_mm512_mul_pd(two, pc), cols)));
    const __m512d v =
        _mm512_mul_pd(s, _mm512_add_pd(_mm512_mul_pd(al, sd), _mm512_mul_pd(mu, mu_term)));
    _mm256_storeu_ps(e.y + r, _mm512_cvtpd_ps(v));
  }
  epilogue_scalar(e, r);
}
}  // namespace

void binary_gemm(const PackedBinary& w, const QuantActs& a, float* y, int row_begin, int row_end,
                 BinaryKernel k) {
  if (row_end < 0) row_end = w.rows;
  check_shapes(w, a, row_begin, row_end);
  // Rows per block: S scratch stays in L1, weights in L2. Decode (one token)
  // takes the whole range at once so kernels can stream several regions.
  const int kBlock = a.tokens == 1 ? std::max(1, row_end - row_begin) : 128;
  thread_local std::vector<int32_t> scratch;
  if (scratch.size() < (size_t)kBlock * a.tokens) scratch.resize((size_t)kBlock * a.tokens);
  const int cols = w.cols;
  const bool avx512 = kernels().binary_epilogue_avx512;
  for (int i0 = row_begin; i0 < row_end; i0 += kBlock) {
    const int n = std::min(kBlock, row_end - i0);
    run_sums(w, a, i0, n, scratch.data(), (size_t)n, k);
    for (int t = 0; t < a.tokens; ++t) {
      const Epilogue e{scratch.data() + (size_t)t * n, w.row_popcount.data() + i0,
                       w.alpha.data() + i0, w.mu.data() + i0, n, (double)a.scale[t],
                       (double)a.qsum[t], (double)a.zero[t], (double)cols,
                       y + (size_t)t * w.rows + i0};
      if (avx512) epilogue_avx512(e);
      else epilogue_scalar(e, 0);
    }
  }
}

void binary_gemm_omp(const PackedBinary& w, const QuantActs& a, float* y, BinaryKernel k) {
  // Validate here: exceptions must not escape the parallel region.
  check_shapes(w, a, 0, w.rows);
  if (k == BinaryKernel::Auto) k = default_binary_kernel(a.bits, a.tokens);
  BWLA_CHECK(binary_kernel_available(k), "binary kernel {} needs ISA above active {}",
             binary_kernel_name(k), isa_name(active_isa()));
  detail::for_row_ranges(w.rows, [&](int r0, int r1) { binary_gemm(w, a, y, r0, r1, k); });
}

namespace detail {
void for_row_ranges(int rows, const std::function<void(int, int)>& fn) {
  const int nt = omp_get_max_threads();
  if (nt <= 1 || rows < 32) {
    fn(0, rows);
    return;
  }
  const int units = (rows + 15) / 16;
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num(), n = omp_get_num_threads();
    const int u0 = (int)((long)units * tid / n), u1 = (int)((long)units * (tid + 1) / n);
    const int r0 = std::min(rows, u0 * 16), r1 = std::min(rows, u1 * 16);
    if (r1 > r0) fn(r0, r1);
  }
}
}  // namespace detail

}  // namespace bwla
