#include "quant/act_quant.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/blas_par.h"
#include "core/error.h"
#include "kernels/act_quant.h"

namespace bwla {

namespace {
void check_args(int dim, int bits, float clip) {
  BWLA_CHECK(dim > 0, "activation quantization: dim must be positive, got {}", dim);
  BWLA_CHECK(bits >= 2, "activation quantization: bits must be >= 2 (16 = off), got {}", bits);
  BWLA_CHECK(clip > 0.0f && clip <= 1.0f && std::isfinite(clip),
             "activation quantization: clip ratio must be in (0, 1], got {}", clip);
}

void quant_row(float* x, int dim, float maxq, float clip) {
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  for (int j = 0; j < dim; ++j) {
    mn = std::min(mn, x[j]);
    mx = std::max(mx, x[j]);
  }
  // The packed kernels' rule and codes, dequantized as dequantize_acts does.
  const ActQuantParams p = act_quant_params(mn, mx, clip, maxq);
  for (int j = 0; j < dim; ++j) {
    float q = std::nearbyint(x[j] * p.inv_scale) + p.zero;
    q = std::min(std::max(q, 0.0f), maxq);
    x[j] = p.scale * (q - p.zero);
  }
}
}  // namespace

void fake_quant_acts(float* x, long rows, int dim, int bits, float clip) {
  check_args(dim, bits, clip);
  if (bits >= 16 || rows <= 0) return;
  const float maxq = (float)((1u << bits) - 1);
#pragma omp parallel for schedule(static) if (rows >= 64)
  for (long r = 0; r < rows; ++r) quant_row(x + r * (long)dim, dim, maxq, clip);
}

std::vector<float> default_act_clip_grid() {
  std::vector<float> g;
  for (int i = 0; i <= 10; ++i) g.push_back(1.0f - 0.05f * (float)i);
  return g;
}

double act_quant_output_error(const float* x, long n, int dim, const MatrixRM& w, int bits,
                              float clip) {
  check_args(dim, bits, clip);
  BWLA_CHECK(w.cols() == dim, "act clip search: W has {} columns but activations have dim {}",
             w.cols(), dim);
  if (bits >= 16 || n <= 0) return 0.0;
  Eigen::Map<const MatrixRM> xm(x, n, dim);
  MatrixRM d = xm;
  fake_quant_acts(d.data(), n, dim, bits, clip);
  d = xm - d;  // X − Q(X)
  MatrixRM e(n, w.rows());  // (X − Q(X))·Wᵀ through OpenBLAS
  par_sgemm_nt((int)n, (int)w.rows(), dim, 1.0f, d.data(), dim, w.data(), dim, 0.0f, e.data(),
               (int)w.rows());
  return e.cast<double>().squaredNorm();
}

std::vector<double> act_quant_output_errors(const float* x, long n, int dim, const MatrixRM& w,
                                            int bits, const std::vector<float>& grid) {
  for (float c : grid) check_args(dim, bits, c);
  BWLA_CHECK(w.cols() == dim, "act clip search: W has {} columns but activations have dim {}",
             w.cols(), dim);
  std::vector<double> errs(grid.size(), 0.0);
  if (bits >= 16 || n <= 0 || grid.empty()) return errs;
  const int out = (int)w.rows();
  if (out <= dim) {  // direct: one [n, dim] x [dim, out] product per clip ratio
    for (size_t i = 0; i < grid.size(); ++i)
      errs[i] = act_quant_output_error(x, n, dim, w, bits, grid[i]);
    return errs;
  }
  // Wider outputs: ‖E·Wᵀ‖² = Σ E ⊙ (E·G) with G = WᵀW [dim, dim], computed once,
  // so each clip ratio costs an [n, dim] x [dim, dim] product instead.
  MatrixRM g(dim, dim);
  par_ssyrk_upper(dim, out, w.data(), dim, g.data(), dim);
  for (int i = 0; i < dim; ++i)
    for (int j = 0; j < i; ++j) g(i, j) = g(j, i);
  Eigen::Map<const MatrixRM> xm(x, n, dim);
  MatrixRM d(n, dim), t(n, dim);
  std::vector<double> row_sum(n);  // added in row order: the same at any thread count
  for (size_t i = 0; i < grid.size(); ++i) {
    d = xm;
    fake_quant_acts(d.data(), n, dim, bits, grid[i]);
    d = xm - d;  // E = X − Q(X)
    par_sgemm_nt((int)n, dim, dim, 1.0f, d.data(), dim, g.data(), dim, 0.0f, t.data(), dim);  // E·G (G symmetric)
#pragma omp parallel for schedule(static) if (n >= 64)
    for (long r = 0; r < n; ++r) {
      double rs = 0;
      for (int j = 0; j < dim; ++j) rs += (double)d(r, j) * t(r, j);
      row_sum[r] = rs;
    }
    double acc = 0;
    for (double v : row_sum) acc += v;
    errs[i] = acc;
  }
  return errs;
}

float search_act_clip(const float* x, long n, int dim, const MatrixRM& w, int bits,
                      const std::vector<float>& grid) {
  BWLA_CHECK(!grid.empty(), "act clip search: empty clip grid");
  if (bits >= 16) return 1.0f;
  const std::vector<double> errs = act_quant_output_errors(x, n, dim, w, bits, grid);
  float best = grid[0];
  double best_err = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < grid.size(); ++i) {
    if (errs[i] < best_err) {
      best_err = errs[i];
      best = grid[i];
    }
  }
  return best;
}

}  // namespace bwla
