// OKT — Orthogonal-Kronecker Transformation (BWLA notes §1).
//
// For one linear with weight W [out, m], m = n1·n2, learn orthogonal R1 (n1×n1)
// and R2 (n2×n2) such that every rotated row Z_i = R1ᵀ·Wr_i·R2 (Wr_i = row i
// reshaped row-major to n1×n2) has a symmetric double-bell distribution centred
// at ±c_i, which a sign·α binarizer fits well. The transform returned is a
// KroneckerTransform (same map for weight rows and activation tokens, so
// W·x = (W·Rᵀ)(R·x) exactly in real arithmetic).
//
// EM loop (weight-only unless act_weight > 0), per iteration and per factor:
//   E-step: c_i = mean|Z_i|, σ_i = κ·c_i, responsibilities γ of N(+c_i, σ_i²)
//           vs N(−c_i, σ_i²): γ = sigmoid(2·z·c_i/σ_i²); soft target
//           T = c_i·(2γ−1) = c_i·tanh(z/(κ²·c_i))  (κ = 0: hard c_i·sign(z)).
//   M-step on the active factor (other fixed), minimising Σ_i ‖Z_i − T_i‖²
//           (for fixed c, σ this is the EM bound on the mixture NLL):
//     Procrustes, R1: max tr(R1ᵀ·M1), M1 = Σ_i (Wr_i·R2)·T_iᵀ, R1 = U·Vᵀ of M1.
//                 R2: max tr(R2ᵀ·M2), M2 = Σ_i (R1ᵀ·Wr_i)ᵀ·T_i, R2 = U·Vᵀ.
//     Cayley: Euclidean gradient G = −2M of the same objective, skew
//             A = G·Rᵀ − R·Gᵀ, R ← (I + η/2·A)⁻¹(I − η/2·A)·R, backtracking on η
//             until the fixed-target objective decreases (cayley_steps steps).
//   Factors alternate R1, R2 within each iteration.
//
// Reported objective (monotone, see `objective`): the binarization distance
//   J(R) = Σ_i min_{c} ‖Z_i − c·sign(Z_i)‖² / ‖W‖²   (= 1 − m·Σ c_i²/‖W‖²)
//        + act_weight · Σ_t Σ_j (|x̃_tj| − τ_t)₊² / ‖X‖²
// where x̃_t = R·x_t are rotated calibration tokens and τ_t = act_clip·rms(x_t).
// The activation term enters the M-step as extra Procrustes data pulling each
// rotated token toward its clipped copy (an MM step on its tail mass).
// With monotone_guard, an M-step that would raise J is shortened (the polar
// factor of the blend of old and new factor, halving the blend twice) and
// otherwise rejected, so objective[] never increases (beyond 1e-9 relative,
// the float rounding of recomputing J). The loop stops early at a fixed point
// (an iteration in which no M-step lowered J) or when tol > 0 says so.
//
// Cost per iteration: six GEMMs of size out·m·n1 or out·m·n2 (all rows are
// batched into one product via a [n1, out·n2] layout), plus O(out·m) for the
// E-step and small SVDs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quant/factorize.h"
#include "quant/matrix.h"
#include "quant/transform.h"

namespace bwla {

struct OktOptions {
  int iters = 20;
  float kappa = 0.25f;  // σ_i = κ·c_i; 0 gives hard (sign) targets
  enum class MStep { Procrustes, Cayley } mstep = MStep::Procrustes;
  // Start from normalised Hadamard·diag(±1) (sizes that are powers of two) or a
  // seeded random orthogonal matrix; otherwise identity (the paper's start).
  bool hadamard_init = false;
  float act_weight = 0.0f;  // 0 = weight-only
  float act_clip = 3.0f;    // tail threshold τ_t in units of the token's RMS
  // Cayley: first trial step rotates by about this angle (Frobenius norm of
  // η/2·A in radians); halved until the fixed-target objective decreases.
  float cayley_lr = 0.25f;
  int cayley_steps = 4;  // Cayley steps per M-step (targets fixed)
  bool monotone_guard = true;
  // Stop early when an iteration lowers J by less than tol·J (0: never).
  float tol = 0.0f;
  int max_factor = kMaxKronFactor;
  uint64_t seed = 0;
};

struct OktResult {
  // Null only when the width cannot be factorised usefully (see okt_factors);
  // the caller then keeps the identity (no rotation). fell_back is set then.
  std::unique_ptr<KroneckerTransform> transform;
  // objective[0] is J at the initial rotation, objective[k] after iteration k
  // (fewer than iters+1 entries after an early stop).
  std::vector<double> objective;
  int n1 = 0, n2 = 0;
  int rejected_steps = 0;  // M-steps reverted by the monotone guard
  bool fell_back = false;  // non-finite objective or unusable width
  std::string note;
  double seconds = 0;
};

// w: [out, m]; act_sample: optional calibration tokens [n, m] (used only when
// opt.act_weight > 0). Throws bwla::Error on empty/non-finite input, bad options
// or mismatched shapes.
OktResult learn_okt(const MatrixRM& w, const MatrixRM* act_sample, const OktOptions& opt);

// ‖W − Ŵ‖²/‖W‖² with the per-row sign binarizer Ŵ_i = α_i·sign(W_i − μ_i) + μ_i,
// μ_i = mean(W_i), α_i = mean|W_i − μ_i| (sign(0) = +1). 0 for an all-zero W.
double binarization_error(const MatrixRM& w);

// The same binarizer, returned dequantized (row-wise).
MatrixRM xnor_binarize_rows(const MatrixRM& w);

// Orthogonal starting matrices (exposed for tests and the Hadamard baseline):
// normalised Sylvester Hadamard times random ±1 column signs when n is a power
// of two, else Q of a seeded Gaussian matrix's QR (with sign fix).
MatrixRM random_orthogonal_init(int n, uint64_t seed);

}  // namespace bwla
