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
  // Binarizer inside the PSP alternation: "full" (the configured binarizer every
  // iteration), "xnor" (row-wise sign·α surrogate, then one final pass of the
  // configured binarizer on rot(W − A·B)), or "auto": full for linears of at most
  // kPspFullInnerMaxWeights weights, xnor above (a full call costs seconds at
  // 1B-model widths, and PSP runs it every iteration).
  std::string psp_inner = "auto";
  static constexpr long kPspFullInnerMaxWeights = 1L << 18;
  bool psp_full_inner(long n_weights) const {
    return psp_inner == "full" || (psp_inner == "auto" && n_weights <= kPspFullInnerMaxWeights);
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

  // Fills defaults that depend on the method and validates; throws bwla::Error.
  void finalize();
  std::string effective_transform() const;
  json to_json() const;
};

std::vector<std::string> quantize_methods();

}  // namespace bwla
