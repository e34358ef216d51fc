// Settings of one quantization run (all methods share the pipeline).
#pragma once
#include <string>

#include "io/json.h"
#include "pipeline/calibration.h"
#include "quant/okt.h"
#include "quant/psp.h"
#include "runtime/transform_kind.h"
#include "quant/weight_quant.h"

namespace bwla {

// bwla's default one-plane layout (the CLI's defaults for --method bwla
// without --groups; measured in docs/RESULTS.md, one-plane BWLA ablation).
constexpr int kBwlaOnePlaneSignRefine = 2;
// Sweep block (and α, μ columns) of the one-plane layout: larger than any row,
// so one α, μ per row and the packed file's whole-row kernels.
constexpr int kBwlaOnePlaneBlock = 1 << 20;

// Whether the inputs of o_proj / down_proj are kept for every calibration row
// between the statistics pass and the propagation, or recomputed per chunk.
// Either way the output is the same bits; recomputing costs one more
// attention / gate-up forward per layer.
enum class KeepActivations { Auto, Yes, No };
constexpr double kKeepActivationsAutoBytes = 2.0 * (1 << 30);
// linear_jobs = 0: side by side up to this many weights per linear (the
// TinyLlama-1.1B shape's largest, 5632 × 2048, is 11.5M; Llama-2-7B's 45M).
constexpr long kSideBySideMaxWeights = 16l << 20;

struct QuantizeOptions {
  // Method: one of weight_methods() (rtn-sign, gptq, billm, arb, arb-x, arb-rc,
  // rtn) or "bwla" (OKT + PSP + binarizer).
  std::string method = kBwlaMethod;
  bool is_bwla() const { return method == kBwlaMethod; }
  int wbits = 1;
  int abits = 16;  // 4, 6, 8 or 16 (16 = activations stay fp32)
  std::string transform = "auto";  // none | hadamard | okt | auto (okt for bwla, else none)
  bool psp = false;                // set for bwla unless --no-psp
  std::string binarizer = "arb-x"; // bwla's weight quantizer
  bool clip_search = true;         // per-linear activation clip grid search
  // PSP iterations that run the configured binarizer (the last ones); the
  // earlier ones binarize with the row-wise sign·α surrogate, which steers A·B
  // at no cost next to a full call (seconds per call at 1B widths). -1: every
  // iteration full (the paper's alternation); 0 (auto): 1 with column groups
  // or sign refinement, all otherwise. With column groups, more full
  // alternations fit the binarizer to A·B's early, noisy residuals and score
  // worse; with sign refinement (the one-plane default) the final refinement
  // does the work the extra alternations did (docs/RESULTS.md, BWLA ablation).
  int psp_full_iters = 0;
  int effective_psp_full_iters() const {
    return psp_full_iters != 0 ? psp_full_iters : (wq.groups || wq.sign_refine > 0 ? 1 : -1);
  }
  double rank_ratio = 0.005;       // > 0: PSP rank = max(1, round(ratio * min(out, in))) (paper: ≈0.005)
  WeightQuantOptions wq;
  OktOptions okt;
  PspOptions psp_opt;
  CalibOptions calib;
  int act_sample_rows = 1024;  // rows kept per linear input for clip search / OKT / errors
  int chunk_segments = 8;      // calibration segments per forward chunk (memory bound)
  uint64_t seed = 0;
  bool resume = true;
  int stop_after = 0;  // > 0: quantize this many layers, keep OUT.partial, return (staged runs)
  KeepActivations keep_activations = KeepActivations::Auto;  // not in the resume settings: same bits
  // A slot's linears quantized side by side, one thread each (1: one at a
  // time with every thread; 0: auto = the thread count while the slot's
  // largest linear has at most kSideBySideMaxWeights weights, else 1). Side by
  // side pays on small linears, whose products do not keep several threads
  // busy; on large ones it only multiplies the working set (the Llama-2-7B
  // shape's gate/up: ≈ 3 GB more at the peak, docs/RESULTS.md).
  int linear_jobs = 0;

  // Fills defaults that depend on the method and validates; throws bwla::Error.
  void finalize();
  std::string effective_transform() const;  // its name
  TransformKind transform_kind() const;
  json to_json() const;
};

std::vector<std::string> quantize_methods();

}  // namespace bwla
