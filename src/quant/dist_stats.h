// Distribution diagnostics for weights and activations (used to show what OKT
// does: a single bell per row becomes a double bell; activation tails shrink).
#pragma once
#include <vector>

#include "quant/matrix.h"

namespace bwla {

struct DistStats {
  // Pooled over all rows after standardising each row to mean 0, std 1
  // (rows with zero variance are skipped).
  double skewness = 0;
  double kurtosis = 0;  // Pearson (normal = 3, symmetric two-point = 1)
  // Sarle's bimodality coefficient (skew² + 1)/kurtosis on the pooled values:
  // normal 1/3, uniform 5/9, two-point 1; > 5/9 suggests bimodality.
  double bimodality = 0;
  // Fraction of weights with | |w−μ_i| − c_i | ≤ tol·c_i, c_i = mean|w−μ_i|
  // (mass near the row's binarization centres ±c_i).
  double near_centre_mass = 0;
};

// Row-wise statistics of w [rows, cols] (each row standardised separately).
DistStats row_dist_stats(const MatrixRM& w, double near_tol = 0.25);

struct ActStats {
  double max_over_rms = 0;  // mean over tokens of max|x_t| / rms(x_t)
  double kurtosis = 0;      // pooled after per-token standardisation
  double worst_max_over_rms = 0;
};

// Statistics of activation tokens x [tokens, width].
ActStats activation_stats(const MatrixRM& x);

// Counts of values in [lo, hi) split into `bins` equal bins; values outside are
// clamped into the first/last bin; non-finite values are skipped.
std::vector<long> histogram(const float* x, long n, float lo, float hi, int bins);

}  // namespace bwla
