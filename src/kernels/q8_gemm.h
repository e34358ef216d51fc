// Int8 weight matrix with one fp32 scale per row (the packed model's 8-bit
// output head / tied embedding, docs/FORMAT.md), times fp32 activations:
//   y[t, i] = scale_i · Σ_j w_ij · x_tj
// Weights are converted to fp32 in registers (W8A32: activations stay exact),
// so decode reads 1 byte per weight instead of 4. Sums run in fp32 in an
// ISA-dependent order: results agree with the scalar reference to float
// rounding, not bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

namespace bwla {

struct Q8Matrix {
  int rows = 0, cols = 0;
  size_t stride = 0;            // bytes between rows (>= cols)
  const int8_t* w = nullptr;    // [rows, stride]
  const float* scale = nullptr;  // [rows]
};

// Per-row symmetric quantization: scale_i = max_j |w_ij| / 127 (1 for an all-zero
// row), q_ij = round-half-even(w_ij / scale_i) clamped to [−127, 127].
void q8_quantize_rows(const float* w, int rows, int cols, int8_t* q, float* scale);

// y: [tokens, rows] row-major, overwritten. OpenMP over rows (static ranges)
// when the matrix is large; dispatches on active_isa().
void q8_gemm(const Q8Matrix& m, const float* x, int tokens, float* y);

namespace detail {
// Rows [r0, r1) for tokens [0, tokens), any token count; single-threaded.
void q8_rows_scalar(const Q8Matrix& m, const float* x, int tokens, int r0, int r1, float* y);
void q8_rows_avx2(const Q8Matrix& m, const float* x, int tokens, int r0, int r1, float* y);
void q8_rows_avx512(const Q8Matrix& m, const float* x, int tokens, int r0, int r1, float* y);
}  // namespace detail

}  // namespace bwla
