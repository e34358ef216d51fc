// The layer-by-layer post-training quantization loop shared by every method:
// capture layer 0's inputs from the calibration set; for each layer collect
// streaming XᵀX (+ a row sample) per linear input from the fp32 layer, quantize
// its seven linears, and feed the *quantized* layer's outputs to the next.
// Per-layer results go to OUT.partial/ so an interrupted run resumes; the
// final directory is assembled from them and renamed into place at the end.
#pragma once
#include <string>

#include "io/json.h"
#include "pipeline/options.h"

namespace bwla {

struct QuantizeResult {
  json report;  // settings, calibration, per-layer errors, bits, time, RSS
  double bits_per_weight = 0;  // decoder linears, everything counted
  double seconds = 0;
  bool complete = true;  // false when stopped early by stop_after
};

QuantizeResult quantize_model(const std::string& model_dir, const QuantizeOptions& opt,
                              const std::string& out_dir);

}  // namespace bwla
