// PSP — Proximal SVD Projection (BWLA notes §1).
//
// Model of one linear: y = A·B·x + Ŵ_rot·(R·x), with a high-precision low-rank
// branch L = A·B (rank ≤ r, acting on the unrotated input) and a binarized
// weight Ŵ_rot = binarize(rot(W − L)) acting on the rotated input (rot(M) =
// M·Rᵀ, the weight side of an InputTransform; identity when rot is null).
//
// Alternation, starting from A Gaussian and B = 0 (so iteration 0 is plain
// binarization of rot(W)):
//   (i)  Ŵ_rot ← binarize(rot(W − A·B));
//   (ii) A·B ← prox_r(W − rot⁻¹(Ŵ_rot)):
//        Truncated:     best rank-r approximation (truncated SVD), which
//                       minimises ‖W − L − rot⁻¹(Ŵ_rot)‖_F over rank ≤ r;
//        SoftThreshold: top-r singular values shrunk by λ (singular-value soft
//                       thresholding, the proximal map of λ‖L‖_*), λ = soft_lambda,
//                       or σ_{r+1} when soft_lambda ≤ 0.
//   A = U·√S, B = √S·Vᵀ.
// Every evaluated pair (A·B, Ŵ_rot) is scored by the relative reconstruction
// error ‖W − A·B − rot⁻¹(Ŵ_rot)‖_F/‖W‖_F (= ‖rot(W − A·B) − Ŵ_rot‖_F/‖W‖_F since
// R is orthogonal); the best pair is returned, so the result is never worse
// than iteration 0 (plain binarization). With warm-up iterations (see
// PspOptions::warm_iters) only pairs from the real binarizer are candidates.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "quant/matrix.h"
#include "quant/transform.h"

namespace bwla {

struct PspOptions {
  int rank = 16;
  int iters = 10;
  enum class Prox { Truncated, SoftThreshold } prox = Prox::Truncated;
  float soft_lambda = 0;  // ≤ 0: σ_{r+1} of the current residual
  uint64_t seed = 0;
  int power_iters = 2;  // randomized SVD (matrices with min dimension > 512)
  // Iterations 0..warm_iters-1 binarize with the cheap `warm` binarizer given to
  // run_psp (if any) and only steer A·B; the pairs they produce are not
  // returned. At least the last iteration always uses the real binarizer.
  int warm_iters = 0;
};

// Returns the dequantized binarization of its argument (row-wise), same shape.
using Binarizer = std::function<MatrixRM(const MatrixRM&)>;

struct PspResult {
  MatrixRM a;          // [out, r]
  MatrixRM b;          // [r, in]
  MatrixRM w_hat_rot;  // binarized rotated residual [out, in], rotated basis
  // residual[t]: relative error after the binarization step of iteration t
  // (residual[0] = plain binarization).
  std::vector<double> residual;
  double error = 0;  // relative error of the returned (a, b, w_hat_rot)
  int best_iter = 0;
  int warm_iters = 0;  // iterations that used the warm binarizer (after clamping)
};

// w: [out, in]; rot: optional transform with dim() == in. Throws bwla::Error on
// empty/non-finite w, rank outside [0, min(out, in)], iters < 1, a transform of
// the wrong width, or a binarizer returning the wrong shape/non-finite values.
// on_best (optional) is called whenever the kept pair changes, right after the
// binarizer call that produced its Ŵ_rot (so a binarizer that records side data
// of its last call, e.g. ARB-RC factors, can keep those of the returned Ŵ_rot).
PspResult run_psp(const MatrixRM& w, const InputTransform* rot, const Binarizer& binarize,
                  const PspOptions& opt, const Binarizer* warm = nullptr,
                  const std::function<void()>& on_best = {});

// Bits of the high-precision branch: A and B at 16 bits per value.
double psp_storage_bits(int out, int in, int rank);

// Default binarizer: per row α·sign(w − μ) + μ (μ = mean, α = mean|w − μ|).
Binarizer xnor_row_binarizer();

}  // namespace bwla
