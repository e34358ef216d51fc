// Helpers shared by the quant tests: seeded random weights and correlated
// Gaussian calibration activations.
#pragma once
#include <cmath>

#include "core/rng.h"
#include "quant/matrix.h"

namespace bwla::test {

inline MatrixRM gaussian(long rows, long cols, uint64_t seed, double sd = 1.0) {
  Rng rng(seed);
  MatrixRM m(rows, cols);
  for (long i = 0; i < rows; ++i)
    for (long j = 0; j < cols; ++j) m(i, j) = (float)(sd * rng.normal());
  return m;
}

// X [n, dim] = Z·M with M = diag(channel scales)·(I + c·G/√dim): correlated
// channels with uneven magnitudes (a few "outlier" channels ×8), like LLM
// layer inputs.
inline MatrixRM correlated_x(long n, long dim, uint64_t seed, double c = 0.8) {
  Rng rng(seed);
  MatrixRM z = gaussian(n, dim, seed * 7 + 1);
  MatrixRM mix = MatrixRM::Identity(dim, dim);
  for (long i = 0; i < dim; ++i)
    for (long j = 0; j < dim; ++j) mix(i, j) += (float)(c * rng.normal() / std::sqrt((double)dim));
  for (long i = 0; i < dim; ++i) {
    double s = 0.5 + rng.uniform();
    if (i % 61 == 3) s *= 8.0;
    mix.row(i) *= (float)s;
  }
  return z * mix;
}

inline MatrixD gram(const MatrixRM& x) {
  MatrixD xd = x.cast<double>();
  return xd.transpose() * xd;
}

// ‖(W − Ŵ)Xᵀ‖_F / ‖W Xᵀ‖_F
inline double rel_out_err(const MatrixRM& w, const MatrixRM& wh, const MatrixRM& x) {
  MatrixD xd = x.cast<double>();
  MatrixD d = (w - wh).cast<double>() * xd.transpose();
  MatrixD y = w.cast<double>() * xd.transpose();
  return d.norm() / y.norm();
}

}  // namespace bwla::test
