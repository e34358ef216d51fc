// y = x̂·Ŵᵀ for an ARB-RC binarized weight matrix (row and column scales,
// quant/billm.h's ArbRC refinement, in its packed form, docs/FORMAT.md):
//   ŵ_ij = a_{k,i,b}·c_{k,j}·s_ij + μ_{g,i,b}     (b = j / block_cols)
// where each entry is in one group g: salient (whole columns of a block, two
// sign planes k = 0 and 1), concentrated (k = 2) or sparse (k = 3); μ of the
// two salient planes is one sum μ_0. With the activations fixed per token,
// c_k·x̂ is precomputed once per token (RcActs), and a row's block sums are
//   Σ_j ŵ_ij x̂_j = a_0·T_0 + a_1·T_1 + a_2·T_2 + a_3·T_3 + μ_0·U_sal
//                 + μ_1·(U_blk − U_sal − U_sp) + μ_2·U_sp
// with T_k = Σ_{j ∈ group} ±(c_k x̂)_j, U the plain sums of x̂ over the block,
// the salient columns and the row's sparse entries. The sums are fp32 in an
// ISA-dependent order: kernels agree with the scalar reference to rounding.
#pragma once
#include <cstdint>
#include <vector>

#include "core/aligned.h"

namespace bwla {

constexpr int kRcPlanes = 4;  // salient, salient second plane, concentrated, sparse
constexpr int kRcGroups = 3;  // salient, concentrated, sparse (one μ each)

struct RcMatrix {
  int rows = 0, cols = 0;
  int words = 0;       // 64-bit words per bit row: ceil(cols / 64)
  int block_cols = 0;  // multiple of 64
  int blocks = 0;      // ceil(cols / block_cols)
  AlignedBuffer<uint64_t> sign;     // [rows][words]: first-plane sign, set = +1
  AlignedBuffer<uint64_t> sparse;   // [rows][words]: entry in the sparse group
  AlignedBuffer<uint64_t> salient;  // [words]: salient column (of its block)
  int nsal = 0, words2 = 0;         // salient columns; words per sign2 row
  AlignedBuffer<uint64_t> sign2;    // [rows][words2]: second-plane signs, bit t = t-th salient column
  std::vector<int> sal_cols;        // the salient columns, ascending
  std::vector<int> sal_start;       // [blocks + 1]: first index into sal_cols of each block
  std::vector<float> a;             // [kRcPlanes][rows][blocks]
  std::vector<float> mu;            // [kRcGroups][rows][blocks]
  std::vector<float> c;             // [kRcPlanes][cols]
  bool unit_c = false;              // every c is 1 (set by index_salient)

  float A(int k, int i, int b) const { return a[((size_t)k * rows + i) * blocks + b]; }
  float M(int g, int i, int b) const { return mu[((size_t)g * rows + i) * blocks + b]; }
  bool bit(const AlignedBuffer<uint64_t>& m, int i, int j) const {
    return (m[(size_t)i * words + (j >> 6)] >> (j & 63)) & 1;
  }
  bool is_salient(int j) const { return (salient[j >> 6] >> (j & 63)) & 1; }
  // Fills sal_cols / sal_start / nsal / words2 from `salient` and unit_c from
  // `c` (call after both are set).
  void index_salient();
  // The dequantized weight ŵ_ij (reference; tests and checks).
  float weight(int i, int j) const;
};

// Per-token activations prepared for the kernels: x̂ and c_k ⊙ x̂ (k = 0, 2, 3)
// zero-padded to words·64 columns, the salient columns' c_1 ⊙ x̂ gathered in
// order, and the per-block sums U_blk, U_sal and Σ of the gathered values.
struct RcActs {
  int tokens = 0, stride = 0;   // stride = words·64
  AlignedBuffer<float> x, x0, x2, x3;  // [tokens][stride]
  std::vector<float> g;         // [tokens][nsal]
  std::vector<float> ublk, usal, gsum;  // [tokens][blocks]
};

// x: dequantized activations [tokens, cols].
void rc_prepare(const RcMatrix& m, const float* x, int tokens, RcActs& out);

// y: [tokens, rows] row-major, overwritten. OpenMP over rows when large.
void rc_gemm(const RcMatrix& m, const RcActs& a, float* y);

namespace detail {
// Rows [r0, r1) for all tokens; single-threaded. scalar is the reference: it
// sums ŵ_ij·x̂_j column by column, straight from the definition.
void rc_rows_scalar(const RcMatrix& m, const RcActs& a, int r0, int r1, float* y);
void rc_rows_avx2(const RcMatrix& m, const RcActs& a, int r0, int r1, float* y);
void rc_rows_avx512(const RcMatrix& m, const RcActs& a, int r0, int r1, float* y);
}  // namespace detail

}  // namespace bwla
