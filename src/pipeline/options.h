// Settings of one quantization run (all methods share the pipeline).
#pragma once
#include <string>

#include "io/json.h"
#include "pipeline/calibration.h"
#include "quant/okt.h"
#include "quant/psp.h"
#include "quant/weight_quant.h"

namespace bwla {

struct QuantizeOptions {
  // Method: one of weight_methods() (rtn-sign, gptq, billm, arb, arb-x, arb-rc,
  // rtn) or "bwla" (OKT + PSP + binarizer).
  std::string method = "bwla";
  int wbits = 1;
  int abits = 16;  // 4, 6, 8 or 16 (16 = activations stay fp32)
  std::string transform = "auto";  // none | hadamard | okt | auto (okt for bwla, else none)
  bool psp = false;                // set for bwla unless --no-psp
  std::string binarizer = "arb-x"; // bwla's weight quantizer
  bool clip_search = true;         // per-linear activation clip grid search
  // Binarizer inside the PSP alternation: "xnor" (row-wise sign·α surrogate for
  // every iteration, then one pass of the configured binarizer on rot(W − A·B))
  // or "full" (the configured binarizer every iteration). xnor is the default:
  // on stories260K W1A6 (3 seeds) it scored 198.1 ± 12.3 PPL against 209.2 ±
  // 13.0 for full, 5x faster; a full call costs seconds at 1B-model widths.
  std::string psp_inner = "xnor";
  bool psp_full_inner() const { return psp_inner == "full"; }
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

  // Fills defaults that depend on the method and validates; throws bwla::Error.
  void finalize();
  std::string effective_transform() const;
  json to_json() const;
};

std::vector<std::string> quantize_methods();

}  // namespace bwla
