#include "kernels/binary_gemm_blocked.h"

#include <algorithm>

#include "core/cpu.h"
#include "core/error.h"

namespace bwla {

BlockScales make_block_scales(const PackedBinary& w, int block_cols, const float* alpha,
                              const float* mu) {
  BWLA_CHECK(block_cols > 0 && block_cols % 64 == 0, "block scales: {} columns is not a positive multiple of 64",
             block_cols);
  BlockScales s;
  s.block_cols = block_cols;
  s.blocks = (w.cols + block_cols - 1) / block_cols;
  const size_t n = (size_t)w.rows * s.blocks;
  s.alpha.assign(alpha, alpha + n);
  s.mu.assign(mu, mu + n);
  s.popcount.assign(n, 0);
  const int bw = block_cols / 64;
  for (int i = 0; i < w.rows; ++i) {
    const uint64_t* r = w.row(i);
    for (int k = 0; k < (w.cols + 63) / 64; ++k) s.popcount[(size_t)i * s.blocks + k / bw] += __builtin_popcountll(r[k]);
  }
  return s;
}

namespace {

void sums(BinaryKernel k, const detail::SumsArgs& a) {
  switch (k) {
    case BinaryKernel::Avx2: detail::masked_sums_avx2(a); break;
    case BinaryKernel::Avx512Vnni: detail::masked_sums_avx512_vnni(a); break;
    case BinaryKernel::Avx512MaskAdd: detail::masked_sums_avx512_maskadd(a); break;
    case BinaryKernel::Avx512BitSerial: detail::masked_sums_avx512_bitserial(a); break;
    default: detail::masked_sums_scalar(a); break;
  }
}

void rows_range(const PackedBinary& w, const BlockScales& s, const QuantActs& a,
                const std::vector<int32_t>& Qb, float* y, int row_begin, int row_end,
                BinaryKernel k) {
  constexpr int kBlock = 128;
  const int T = a.tokens, bw = s.block_cols / 64;
  std::vector<int32_t> S((size_t)kBlock * T);
  std::vector<double> acc((size_t)kBlock * T);
  for (int i0 = row_begin; i0 < row_end; i0 += kBlock) {
    const int n = std::min(kBlock, row_end - i0);
    std::fill(acc.begin(), acc.begin() + (size_t)n * T, 0.0);
    for (int b = 0; b < s.blocks; ++b) {
      const int c0 = b * s.block_cols, nb = std::min(w.cols - c0, s.block_cols);
      detail::SumsArgs args{w.row(i0) + (size_t)b * bw, (size_t)w.words_per_row,
                            a.q.data() + (size_t)c0, (size_t)a.stride, (nb + 63) / 64, n, T,
                            a.qmax(), S.data(), (size_t)n};
      sums(k, args);
      for (int t = 0; t < T; ++t) {
        const double z = a.zero[t], Q = Qb[(size_t)t * s.blocks + b];
        const double mu_term = Q - z * nb;
        for (int r = 0; r < n; ++r) {
          const size_t si = (size_t)(i0 + r) * s.blocks + b;
          const double sign_dot = 2.0 * S[(size_t)t * n + r] - Q - z * (2.0 * s.popcount[si] - nb);
          acc[(size_t)t * n + r] += (double)s.alpha[si] * sign_dot + (double)s.mu[si] * mu_term;
        }
      }
    }
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < n; ++r)
        y[(size_t)t * w.rows + i0 + r] = (float)(a.scale[t] * acc[(size_t)t * n + r]);
  }
}

}  // namespace

void binary_gemm_blocked(const PackedBinary& w, const BlockScales& s, const QuantActs& a, float* y,
                         BinaryKernel k) {
  BWLA_CHECK(w.cols == a.cols, "binary_gemm_blocked: weight cols {} != activation cols {}", w.cols,
             a.cols);
  BWLA_CHECK(s.block_cols > 0 && s.block_cols % 64 == 0 &&
                 s.blocks == (w.cols + s.block_cols - 1) / s.block_cols &&
                 s.alpha.size() == (size_t)w.rows * s.blocks && s.mu.size() == s.alpha.size() &&
                 s.popcount.size() == s.alpha.size(),
             "binary_gemm_blocked: block scales ({} blocks of {} columns) do not fit [{}, {}]",
             s.blocks, s.block_cols, w.rows, w.cols);
  BWLA_CHECK(a.bits >= 1 && a.bits <= 8, "binary_gemm_blocked: activation bits {}", a.bits);
  if (a.tokens <= 0 || w.rows <= 0) return;
  if (k == BinaryKernel::Auto) {
    k = default_binary_kernel(a.bits, a.tokens);
    // Bit-serial loads 8 aligned words at a time: only for blocks of 512·n columns.
    if (k == BinaryKernel::Avx512BitSerial && (s.block_cols % 512 != 0 || w.words_per_row % 8 != 0))
      k = kernels().binary_tokens;
  }
  BWLA_CHECK(binary_kernel_available(k), "binary kernel {} needs ISA above active {}",
             binary_kernel_name(k), isa_name(active_isa()));
  BWLA_CHECK(k != BinaryKernel::Avx512BitSerial || s.block_cols % 512 == 0,
             "binary_gemm_blocked: bit-serial kernel needs blocks of 512·n columns, got {}", s.block_cols);
  // Σ q per token and block.
  std::vector<int32_t> Qb((size_t)a.tokens * s.blocks, 0);
  for (int t = 0; t < a.tokens; ++t) {
    const uint8_t* q = a.row(t);
    for (int j = 0; j < a.cols; ++j) Qb[(size_t)t * s.blocks + j / s.block_cols] += q[j];
  }
  detail::for_row_ranges(w.rows, [&](int r0, int r1) { rows_range(w, s, a, Qb, y, r0, r1, k); });
}

}  // namespace bwla
