// Model-agnostic weight quantization of one linear layer: the API the
// layer-by-layer pipeline calls. W is [out, in] (y = x·Wᵀ); H-aware methods
// get S = XᵀX (double, [in, in]) accumulated over n_tokens calibration tokens.
// The result is the dequantized Ŵ (fake quant) plus an honest storage count.
//
// Methods (all per output row):
//   rtn-sign  XNOR: ŵ = α·sign(w−μ)+μ, μ = mean(w), α = mean|w−μ|. wbits 1. No XᵀX.
//   rtn       asymmetric min-max RTN per row / per group. wbits 2,3,4,8. No XᵀX.
//   gptq      GPTQ sweep (gptq.h). wbits 1 (sign·α+μ per row) or 2,3,4,8. Needs XᵀX.
//   billm     BiLLM (billm.h): salient columns + residual planes, magnitude groups,
//             block-wise compensation. wbits 1. XᵀX optional (null: H = I).
//   arb       ARB-LLM alternating refinement inside the same block framework.
//             XᵀX optional (null: H = I, i.e. no compensation, salience = w²).
//   arb-x     arb + least-squares refit of all α, μ against the block's output
//             metric (billm.h). Needs XᵀX.
//   arb-rc    row·column scales ŵ = a_i·b_ij·c_j + μ_i. XᵀX optional.
//   arb* use BiLLM's column-group bitmaps when opt.groups (default true, the
//   paper's ARB-LLM_X / ARB-LLM_RC setup); billm always does.
//
// Storage accounting (storage_bits, whole layer):
//   * 1 bit per weight per sign bitplane (salient columns have 2 planes);
//   * n bits per weight for n-bit RTN/GPTQ codes;
//   * 16 bits (fp16 on disk) per stored scale, mean, RTN minimum; per row
//     (rtn-sign, gptq-1), per row per group (rtn/gptq n-bit), per row per
//     block per group (billm/arb*: α1, α2, μ for salient, α, μ per magnitude
//     group), plus column scales for arb-rc;
//   * 1 bit per entry for bitmaps: the concentrated/sparse membership of every
//     non-salient weight, and the salient-column mask (block columns per block).
//   Transforms (hadamard/OKT) and low-rank branches are counted by their owners.
//   The fp16 rounding of scales is not simulated in Ŵ (relative 2⁻¹¹).
//   paper_bits is the papers' convention (signs + salient second plane +
//   salient-column mask; group bitmaps and scales excluded) for comparison
//   with published bit widths (BiLLM/ARB-LLM ≈ 1.07–1.1).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quant/hessian.h"
#include "quant/matrix.h"
#include "quant/rc_factors.h"
#include "quant/sign_refine.h"

namespace bwla {

struct WeightQuantOptions {
  std::string method = "rtn-sign";
  int wbits = 1;
  int group_size = 0;     // rtn/gptq n-bit: 0 = per row
  int block_size = 128;   // sweep block (GPTQ lazy batch, BiLLM/ARB block)
  double damp = 0.01;     // damping, fraction of mean(diag H)
  int arb_iters = 15;
  int salient_max = 16;   // max salient columns per block (billm/arb* with groups)
  bool groups = true;     // arb*: BiLLM column-group bitmaps
  // arb / arb-x / gptq-1 one-plane (groups off): rounds of output-aware sign
  // flips + scale refit after the sweep (sign_refine.h); 0 = off. Needs XᵀX.
  int sign_refine = 0;
  uint64_t seed = 0;      // reserved for randomized methods
  std::string layer;      // name for messages
};

struct WeightQuantResult {
  MatrixRM w_hat;
  double storage_bits = 0;  // everything: signs, codes, scales, means, bitmaps
  double paper_bits = 0;    // papers' convention (see above)
  std::string summary;
  std::shared_ptr<const RcFactors> rc;  // arb-rc: the factors of w_hat (else null)
  double bits_per_weight() const {
    return w_hat.size() ? storage_bits / (double)w_hat.size() : 0.0;
  }
};

// xtx may be null for methods that do not need it (see above). Errors
// (bwla::Error): unknown method, unsupported wbits, shape mismatch, NaN/Inf in
// W or XᵀX, missing XᵀX, non-finite Ŵ.
// hessian_cache (optional): the prepared Hessian of xtx is computed into it on
// the first call and reused by later calls with the same xtx and damping (PSP
// binarizes the same layer many times).
WeightQuantResult quantize_weight(const MatrixRM& w, const MatrixD* xtx, long n_tokens,
                                  const WeightQuantOptions& opt,
                                  PreparedHessian* hessian_cache = nullptr);

// The composite method (OKT + PSP + a binarizer of this table as its weight
// quantizer): the one method name that is not a row of the table.
inline constexpr const char* kBwlaMethod = "bwla";

std::vector<std::string> weight_methods();
// wbits accepted by a method (empty for an unknown method).
std::vector<int> weight_method_bits(const std::string& method);
bool weight_method_needs_xtx(const std::string& method);
// Whether the method's Ŵ has real per-column scales (ARB-RC): such a linear
// has only the column-group form of the packed format.
bool weight_method_column_scales(const std::string& method);
// Whether sign_refine applies: a one-plane layout (arb / arb-x without column
// groups, gptq at 1 bit).
bool weight_method_sign_refinable(const std::string& method, int wbits, bool groups);
// The refinement quantize_weight runs after the sweep when opt.sign_refine > 0,
// on any target (PSP runs it on its final residual): rows cut into the blocks
// the method stores α, μ for (gptq 1-bit: whole rows; arb*: opt.block_size).
// hp must hold the damped H (prepare_hessian with keep_h).
SignRefineStats refine_one_plane(const MatrixRM& target, MatrixRM& w_hat, const PreparedHessian& hp,
                                 const WeightQuantOptions& opt);

// Per-row / per-group asymmetric min-max RTN (the `rtn` method's quantizer).
MatrixRM rtn_quantize(const MatrixRM& w, int bits, int group_size);

}  // namespace bwla
