// Dynamic per-token asymmetric activation fake-quantization (the A-bits of
// WxAy), shared by every method.
//
// For each token row x (length dim), with clip ratio c in (0, 1]:
//   lo = c·min(x), hi = c·max(x), scale = (hi − lo)/(2^b − 1),
//   zero = round(−lo/scale), q = clamp(round(x/scale) + zero, 0, 2^b − 1),
//   x̂ = (q − zero)·scale.
// The grid need not contain 0 exactly in the [lo, hi] sense (asymmetric).
// Conventions:
//   * bits >= 16 is "activations not quantized": a pass-through, x̂ = x exactly.
//   * a row with hi == lo (constant row, e.g. all zeros) is left unchanged: it is
//     represented exactly by its offset alone.
#pragma once
#include <vector>

#include "quant/matrix.h"

namespace bwla {

// In place on `rows` contiguous rows of `dim` floats. bits in [2, 16+];
// clip in (0, 1]. Bad arguments -> bwla::Error.
void fake_quant_acts(float* x, long rows, int dim, int bits, float clip = 1.0f);

// Default clip grid: 1.00, 0.95, ..., 0.50.
std::vector<float> default_act_clip_grid();

// Chooses the clip ratio from `grid` minimising ‖X·Wᵀ − Q_c(X)·Wᵀ‖²_F over the
// sampled tokens X [n, dim] (row-major) for the layer weight W [out, dim].
// Ties go to the earlier grid entry. Returns 1.0 when bits >= 16.
float search_act_clip(const float* x, long n, int dim, const MatrixRM& w, int bits,
                      const std::vector<float>& grid = default_act_clip_grid());

// The same quantity for every clip ratio of `grid`, as search_act_clip
// evaluates it: when W has more rows than columns, through the Gram matrix
// WᵀW (‖E·Wᵀ‖² = tr(E·WᵀW·Eᵀ), E = X − Q_c(X)), which is equal up to float
// rounding and costs dim/out of the direct products.
std::vector<double> act_quant_output_errors(const float* x, long n, int dim, const MatrixRM& w,
                                            int bits, const std::vector<float>& grid);

// ‖X·Wᵀ − Q_c(X)·Wᵀ‖²_F for one clip ratio (the quantity search_act_clip minimises).
double act_quant_output_error(const float* x, long n, int dim, const MatrixRM& w, int bits,
                              float clip);

}  // namespace bwla
