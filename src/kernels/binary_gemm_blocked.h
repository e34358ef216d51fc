// Packed ±1 GEMM with per-(row, column-block) scales, for binarizers that fit
// α, μ per block of columns (ARB-X / BiLLM-style block sweeps):
//   ŵ_ij = α_ib·(2·m_ij − 1) + μ_ib,  b = j / block_cols  (block_cols a multiple of 64).
// The identity of binary_gemm.h holds per block with S, Q, P restricted to the
// block's n_b columns:
//   y_ti = s_t·Σ_b [α_ib·(2·S_itb − Q_tb − z_t·(2·P_ib − n_b)) + μ_ib·(Q_tb − z_t·n_b)]
// The integer sums run through the same per-ISA kernels (exact); the epilogue
// accumulates in double, so y is identical across ISAs and kernels.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/binary_gemm.h"

namespace bwla {

struct BlockScales {
  int block_cols = 0, blocks = 0;
  std::vector<float> alpha, mu;    // [rows][blocks]
  std::vector<int32_t> popcount;   // [rows][blocks]: Σ_{j in block} m_ij
};

// alpha, mu: [rows][blocks] with blocks = ceil(w.cols / block_cols).
BlockScales make_block_scales(const PackedBinary& w, int block_cols, const float* alpha,
                              const float* mu);

// y: [tokens, w.rows], overwritten. Rows split over OpenMP threads (static).
void binary_gemm_blocked(const PackedBinary& w, const BlockScales& s, const QuantActs& a, float* y,
                         BinaryKernel k = BinaryKernel::Auto);

}  // namespace bwla
