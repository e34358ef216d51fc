// 4-bit weight matrix in groups of 32 columns with one fp16 scale per group
// (the packed model's `q4` output head / tied embedding, docs/FORMAT.md), times
// activations quantized per token to int8 in the same groups of 32:
//   y[t, i] = Σ_g  d_ig · s_tg · Σ_{j in g} (q_ij − 8) · a_tj
// q_ij ∈ [0, 15] (4 bits), d_ig the fp16 group scale, a_tj ∈ [−127, 127] the
// int8 activations with group scale s_tg = max_{j in g} |x_tj| / 127.
//
// Storage (CPU-independent): row i is q4_groups(cols) blocks of 16 bytes; byte j
// of group g holds column 32g + j in its low nibble and 32g + 16 + j in its high
// nibble. Columns past `cols` (the last group's padding) hold q = 8 (zero).
//
// Group dots are exact integers in every ISA; the sum over groups runs in fp32
// in an ISA-dependent order, so results agree with the scalar reference to
// float rounding, not bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bwla {

constexpr int kQ4Group = 32;
inline int q4_groups(int cols) { return (cols + kQ4Group - 1) / kQ4Group; }
inline size_t q4_row_bytes(int cols) { return (size_t)q4_groups(cols) * (kQ4Group / 2); }

struct Q4Matrix {
  int rows = 0, cols = 0;
  const uint8_t* w = nullptr;       // [rows, q4_row_bytes(cols)]
  const uint16_t* scale = nullptr;  // fp16 bits [rows, q4_groups(cols)]
};

// Per-group symmetric quantization, q = clamp(round-half-even(w / d) + 8, 0, 15)
// with the fp16 scale d of least squared error among −m / (8 + k/16),
// k = −16…16, and m / 7 (m: the group's value of largest magnitude; d = 0 for
// an all-zero group). Throws on a non-finite weight.
void q4_quantize_rows(const float* w, int rows, int cols, uint8_t* q, uint16_t* scale);

// Row `row` dequantized: out[j] = d·(q − 8), j < cols.
void q4_dequantize_row(const Q4Matrix& m, int row, float* out);

// Per-token, per-group int8 activations (natural column order, the last group
// zero-padded): q [tokens, groups·32], scale [tokens, groups].
struct Q4Acts {
  int tokens = 0, cols = 0, groups = 0;
  std::vector<int8_t> q;
  std::vector<float> scale;
};
// s = max |x| / 127 per group, a = clamp(round-half-even(x · 127 / max |x|)), 0
// for an all-zero group. Throws on a non-finite input.
void q4_quantize_acts(const float* x, int tokens, int cols, Q4Acts& a);

// y: [tokens, rows] row-major, overwritten. OpenMP over rows (static ranges)
// when the matrix is large; dispatches through kernels() (kernels/dispatch.h).
void q4_gemm(const Q4Matrix& m, const float* x, int tokens, float* y);

namespace detail {
// Rows [r0, r1) for all tokens of `a`; single-threaded.
void q4_rows_scalar(const Q4Matrix& m, const Q4Acts& a, int r0, int r1, float* y);
void q4_rows_avx2(const Q4Matrix& m, const Q4Acts& a, int r0, int r1, float* y);
// AVX-512: VNNI (vpdpbusd) where the CPU has it, else AVX512BW multiply-adds.
void q4_rows_avx512_vnni(const Q4Matrix& m, const Q4Acts& a, int r0, int r1, float* y);
void q4_rows_avx512_bw(const Q4Matrix& m, const Q4Acts& a, int r0, int r1, float* y);
}  // namespace detail

}  // namespace bwla
