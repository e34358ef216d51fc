// Exact bit-plane decomposition of dequantized weight rows (the packed format's
// weight encoding, docs/FORMAT.md).
//
// Every row i of a fake-quant weight Ŵ [rows, cols] is cut into column blocks
// of block_cols columns (the last may be shorter; one block = the whole row)
// and each segment (row i, block b) is written as
//   ŵ_ij = Σ_{k < P} ( α_kib·(2·m_kij − 1) + μ_kib ),   m_kij ∈ {0, 1}, b = j / block_cols,
// i.e. P planes of the binary form α(2m−1)+μ that binary_gemm computes.
// A segment with one or two distinct values v_lo ≤ v_hi needs one plane:
//   μ = (v_hi + v_lo)/2, α = (v_hi − v_lo)/2, m = [ŵ = v_hi].
// A segment with K > 2 distinct values v_0 < … < v_{K−1} uses the cheaper of
//   * a uniform grid: v_k = v_0 + n_k·δ (n_k integer, |error| ≤ 1e-5·max|v|):
//     plane b holds bit b of n (d_b = δ·2^b), ceil(log2(max n + 1)) planes;
//   * a thermometer: plane k holds [ŵ ≥ v_{k+1}] (d_k = v_{k+1} − v_k), K−1 planes;
// with α_k = μ_k = d_k/2 and the base v_0 added to μ_0. Planes a segment does
// not use have α = μ = 0 and no set bits. The linear's plane count P is the
// maximum over its segments; more than max_planes is an error naming the linear.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bwla {

struct BitPlanes {
  int planes = 0, rows = 0, cols = 0;
  int words = 0;                 // 64-bit words per row: ceil(cols / 64)
  int block_cols = 0, blocks = 1;  // scale blocks along a row
  std::vector<uint64_t> bits;    // [planes][rows][words], bit j%64 of word j/64
  std::vector<float> alpha, mu;  // [planes][rows][blocks]
  int max_distinct = 0;          // largest number of distinct values in a segment

  uint64_t* row(int k, int i) { return bits.data() + ((size_t)k * rows + i) * words; }
};

// block_cols: a multiple of 64, or 0 / ≥ cols for whole rows. what: the
// linear's name for error messages; method: the source method.
BitPlanes decompose_rows(const float* w, int rows, int cols, int max_planes,
                         const std::string& what, const std::string& method, int block_cols = 0);

// Σ_k α_ki(2m_kij − 1) + μ_ki in float (for tests).
std::vector<float> compose_rows(const BitPlanes& p);

}  // namespace bwla
