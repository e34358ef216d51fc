// One token against one 64-output weight panel: y[i] = Σ_k x[k]·P[k][i] for
// i < n_out (≤ 64), P row-major [kp, 64]. This is oneDNN's f32 matmul weight
// layout seen one panel at a time (PrepackedGemm's single-token path); x has kp
// entries (zero beyond the real K, where P is zero-padded too).
// Scalar reference and AVX2 / AVX-512 versions; panel_gemv dispatches on
// active_isa(). Sums are in an ISA-dependent order (float rounding differs).
#pragma once

namespace bwla::detail {

void panel_gemv_scalar(const float* P, const float* x, int kp, int n_out, float* y);
void panel_gemv_avx2(const float* P, const float* x, int kp, int n_out, float* y);
void panel_gemv_avx512(const float* P, const float* x, int kp, int n_out, float* y);
void panel_gemv(const float* P, const float* x, int kp, int n_out, float* y);

}  // namespace bwla::detail
