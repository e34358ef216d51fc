// The layer Hessian used by GPTQ-family methods: H = 2·XᵀX/N (+ damping),
// and the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) that drives the
// column-sweep error feedback.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quant/matrix.h"

namespace bwla {

struct PreparedHessian {
  MatrixRM u;                 // upper-triangular, H⁻¹ = UᵀU (fp32 for the sweep)
  MatrixRM h;                 // damped H (fp32), only when requested (keep_h)
  std::vector<uint8_t> dead;  // columns with H_jj == 0 (input channel never active)
  double lambda = 0;          // damping actually added to the diagonal
  int retries = 0;            // times the damping was multiplied by 10
  bool identity = false;      // calibration-free stand-in (H = I)
};

// H = 2·XᵀX/N; dead columns get H_jj = 1; λ = damp·mean(diag H) is added to
// the diagonal. If the Cholesky factorisation fails, λ is multiplied by 10
// (log_warn) up to 8 times, then bwla::Error. `ctx` names the layer in messages.
PreparedHessian prepare_hessian(const MatrixD& xtx, long n_tokens, double damp, bool keep_h,
                                const std::string& ctx = "");

// Calibration-free stand-in: H = I (no cross-column compensation; salience = w²).
PreparedHessian identity_hessian(int dim, bool keep_h);

// Layer output error tr((W−Ŵ)·S·(W−Ŵ)ᵀ) = Σ_tokens ‖(W−Ŵ)x‖² for S = XᵀX.
double layer_output_error(const MatrixRM& w, const MatrixRM& w_hat, const MatrixD& s);

}  // namespace bwla
