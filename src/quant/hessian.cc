#include "quant/hessian.h"

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "core/log.h"

// LAPACK (provided by OpenBLAS); trailing arguments are the Fortran string lengths.
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda,
             int* info, size_t, size_t);
}

namespace bwla {

namespace {
// Upper Cholesky factor of H⁻¹ without forming H⁻¹: with J the reversal
// permutation, J·H·J = L·Lᵀ gives H = V·Vᵀ, V = J·L·J upper-triangular, hence
// H⁻¹ = V⁻ᵀ·V⁻¹ and U = V⁻¹ = J·L⁻¹·J.
// For H = PSD + λI every Cholesky pivot² is >= λ; a smaller pivot means H
// was indefinite (or numerically so), and is treated as a failure.
// Memory: two n×n double matrices at peak (H and the in-place factor).
bool upper_chol_of_inverse(const MatrixD& h, double lambda, MatrixRM& u) {
  const long n = h.rows();
  BWLA_CHECK(n <= INT32_MAX, "Hessian of dimension {} is too large for LAPACK", n);
  MatrixD f = h.reverse();  // J·H·J (reverse both rows and columns)
  f.diagonal().array() += lambda;
  // LAPACK (OpenBLAS: blocked, multi-threaded, run-time-dispatched kernels):
  // lower Cholesky factor in place, then its inverse in place.
  const char lo = 'L', nonunit = 'N';
  const int ni = (int)n;
  int info = 0;
  dpotrf_(&lo, &ni, f.data(), &ni, &info, 1);
  if (info != 0) return false;
  for (long i = 0; i < n; ++i)
    if (!(f(i, i) > 0) || !std::isfinite(f(i, i)) || f(i, i) * f(i, i) < 0.5 * lambda) return false;
  dtrtri_(&lo, &nonunit, &ni, f.data(), &ni, &info, 1, 1);
  if (info != 0) return false;
  // f's lower triangle is L⁻¹; its strict upper triangle still holds H's entries
  // and lands in U's strict lower triangle, which is cleared.
  u = f.reverse().cast<float>();
  u.triangularView<Eigen::StrictlyLower>().setZero();
  return u.allFinite();
}
}  // namespace

PreparedHessian prepare_hessian(const MatrixD& xtx, long n_tokens, double damp, bool keep_h,
                                const std::string& ctx) {
  const long n = xtx.rows();
  BWLA_CHECK(n > 0 && xtx.cols() == n, "{}: XᵀX must be square and non-empty, got {}x{}", ctx,
             xtx.rows(), xtx.cols());
  BWLA_CHECK(n_tokens > 0, "{}: calibration token count must be positive, got {}", ctx, n_tokens);
  BWLA_CHECK(damp >= 0 && std::isfinite(damp), "{}: damping must be >= 0, got {}", ctx, damp);
  BWLA_CHECK(xtx.allFinite(), "{}: XᵀX contains NaN/Inf", ctx);
  PreparedHessian p;
  MatrixD h = xtx * (2.0 / (double)n_tokens);
  p.dead.assign(n, 0);
  long ndead = 0;
  for (long j = 0; j < n; ++j) {
    if (h(j, j) <= 0) {
      BWLA_CHECK(h(j, j) == 0, "{}: XᵀX has a negative diagonal entry at {} ({})", ctx, j, h(j, j));
      p.dead[j] = 1;
      h.row(j).setZero();
      h.col(j).setZero();
      h(j, j) = 1;
      ++ndead;
    }
  }
  if (ndead) log_debug("{}: {} dead input columns", ctx, ndead);
  const double mean_diag = h.diagonal().mean();
  double lambda = damp * mean_diag;
  if (lambda <= 0) lambda = 1e-8 * mean_diag;
  for (int attempt = 0;; ++attempt) {
    if (upper_chol_of_inverse(h, lambda, p.u)) {
      p.lambda = lambda;
      p.retries = attempt;
      if (keep_h) {
        p.h = h.cast<float>();
        p.h.diagonal().array() += (float)lambda;
      }
      break;
    }
    BWLA_CHECK(attempt < 8, "{}: Cholesky of the damped Hessian failed even with damping {} ({}x mean diag)",
               ctx, lambda, lambda / mean_diag);
    log_warn("{}: Hessian not positive definite with damping {:.3g}; retrying with 10x", ctx, lambda);
    lambda *= 10;
  }
  return p;
}

PreparedHessian identity_hessian(int dim, bool keep_h) {
  PreparedHessian p;
  p.u = MatrixRM::Identity(dim, dim);
  if (keep_h) p.h = MatrixRM::Identity(dim, dim);
  p.dead.assign(dim, 0);
  p.identity = true;
  return p;
}

double layer_output_error(const MatrixRM& w, const MatrixRM& w_hat, const MatrixD& s) {
  BWLA_CHECK(w.rows() == w_hat.rows() && w.cols() == w_hat.cols() && s.rows() == w.cols() &&
                 s.cols() == w.cols(),
             "layer_output_error: shape mismatch W {}x{}, Ŵ {}x{}, S {}x{}", w.rows(), w.cols(),
             w_hat.rows(), w_hat.cols(), s.rows(), s.cols());
  MatrixD d = (w - w_hat).cast<double>();
  MatrixD ds = d * s;
  return (ds.array() * d.array()).sum();
}

}  // namespace bwla
