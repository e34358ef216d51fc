// y = x̂·ŵᵀ for a packed binary weight matrix and quantized activations.
//
// With ŵ_ij = α_i·b_ij + μ_i, b_ij = 2·m_ij − 1 and x̂_tj = s_t·(q_tj − z_t):
//   y_ti = s_t·[α_i·(2·S_it − Q_t − z_t·(2·P_i − cols)) + μ_i·(Q_t − z_t·cols)]
// where S_it = Σ_{j: m_ij=1} q_tj (the integer hot loop, exact in int32),
// Q_t = Σ_j q_tj and P_i = Σ_j m_ij. Every kernel computes S exactly; the float
// epilogue is shared, so y is bit-identical across ISAs and kernels.
#pragma once
#include <cstdint>
#include <functional>

#include "kernels/act_quant.h"
#include "kernels/dispatch.h"
#include "kernels/packed_binary.h"

namespace bwla {

// Inner-loop implementations (BinaryKernel, kernels/dispatch.h). Auto picks
// the fastest for the active ISA, activation bits and token count (see
// default_binary_kernel).
const char* binary_kernel_name(BinaryKernel k);
// Kernel Auto resolves to under the active ISA.
BinaryKernel default_binary_kernel(int act_bits, int tokens);
// Whether kernel k can run under the active ISA on this CPU.
bool binary_kernel_available(BinaryKernel k);

// S[t * (row_end - row_begin) + (i - row_begin)] = Σ_{m_ij=1} q_tj for rows [row_begin, row_end).
void binary_masked_sums(const PackedBinary& w, const QuantActs& a, int32_t* S, int row_begin = 0,
                        int row_end = -1, BinaryKernel k = BinaryKernel::Auto);

// y: row-major [tokens, w.rows]; only columns [row_begin, row_end) of y are written,
// so threads may each take a row range. Single-threaded.
void binary_gemm(const PackedBinary& w, const QuantActs& a, float* y, int row_begin = 0,
                 int row_end = -1, BinaryKernel k = BinaryKernel::Auto);

// Same, split over OpenMP threads (static contiguous row ranges, multiples of 16 rows).
void binary_gemm_omp(const PackedBinary& w, const QuantActs& a, float* y,
                     BinaryKernel k = BinaryKernel::Auto);

namespace detail {
// Calls fn(r0, r1) for contiguous row ranges covering [0, rows), one per OpenMP
// thread, each a multiple of 16 rows (static partitioning); serially as fn(0, rows)
// with one thread or fewer than 32 rows.
void for_row_ranges(int rows, const std::function<void(int, int)>& fn);

// Integer masked sums for `rows` rows starting at `bits` (row stride wstride words),
// `tokens` tokens starting at `q` (row stride qstride bytes), over the first
// `nwords` 64-bit words of each row; writes S[t*ldS + i].
struct SumsArgs {
  const uint64_t* bits;
  size_t wstride;
  const uint8_t* q;
  size_t qstride;
  int nwords, rows, tokens;
  int qmax;
  int32_t* S;
  size_t ldS;
};
void masked_sums_scalar(const SumsArgs& a);
void masked_sums_avx2(const SumsArgs& a);
void masked_sums_avx512_vnni(const SumsArgs& a);
void masked_sums_avx512_maskadd(const SumsArgs& a);
void masked_sums_avx512_bitserial(const SumsArgs& a);
}  // namespace detail

}  // namespace bwla
