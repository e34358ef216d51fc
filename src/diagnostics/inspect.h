// `bwla inspect`: what OKT and PSP do to one decoder linear, as statistics and
// (with PLplot) PNG plots.
//
// For an fp32/bf16 checkpoint the linear's weights are loaded, its input
// activations are captured on the given calibration segments (layers 0..L run
// in fp32), OKT is learned on W and PSP run on top, and the module reports
//   * row distribution statistics (dist_stats.h) of W, of W·Rᵀ (after OKT) and
//     of rot(W − A·B) (what PSP binarizes);
//   * the binarization error ‖W − Ŵ‖²/‖W‖² of the per-row sign binarizer on W,
//     on W·Rᵀ, and of the full PSP model (W vs A·B + rot⁻¹(Ŵ_rot));
//   * activation statistics of the captured tokens before and after R;
//   * singular values of W, of the binarization residual W − rot⁻¹(Ŵ_rot)
//     (the part PSP's low-rank branch approximates) and of the final residual
//     W − A·B − rot⁻¹(Ŵ_rot).
// For a bwla quantized directory (config.json with quantization_config) nothing
// is re-learned: the stored transform and low-rank branch are described, the
// stored Ŵ's distinct values per row counted, and activations captured through
// the quantized layers 0..L-1 are shown before/after the stored transform.
#pragma once
#include <string>
#include <vector>

#include "io/json.h"
#include "quant/dist_stats.h"
#include "quant/matrix.h"
#include "quant/okt.h"

namespace bwla {

struct InspectOptions {
  int layer = 0;
  std::string linear = "q_proj";  // HF name (linear_name)
  OktOptions okt;
  int psp_rank = 0;          // > 0: fixed rank; else rank_ratio·min(out, in), at least 1
  double rank_ratio = 0.005;
  int psp_iters = 10;
  int top_sv = 8;            // singular values listed in the report
};

// Everything the plots need (the report holds the scalar statistics).
struct InspectData {
  json report;
  bool quantized = false;
  // Per-row normalised weights (w − μ_i)/mean|w − μ_i|, pooled; a series per
  // stage ("W", "W·Rᵀ (OKT)", "rot(W − A·B) (PSP)"; quantized: "stored Ŵ").
  std::vector<std::string> weight_labels;
  std::vector<std::vector<float>> weight_values;
  // Per-token max|x|/rms(x) before/after the rotation, and per-token
  // normalised values x/rms(x) (pooled) before/after.
  std::vector<float> tok_ratio_before, tok_ratio_after;
  std::vector<float> act_norm_before, act_norm_after;
  // Singular values (descending), labels alongside.
  std::vector<std::string> sv_labels;
  std::vector<std::vector<double>> sv;
};

// Valid --linear names, in model order.
std::vector<std::string> inspect_linear_names();

// segments: calibration token segments (equal lengths). Throws bwla::Error on
// a bad layer or linear name (the message lists the valid names), missing
// tensors, or empty segments.
InspectData inspect_linear(const std::string& model_dir, const InspectOptions& opt,
                           const std::vector<std::vector<int>>& segments);

// Human-readable summary of inspect_linear's report.
std::string inspect_text(const json& report);

// Whether this build can write PNG plots (PLplot found at configure time).
bool inspect_plots_available();
// Writes <dir>/<prefix>weights.png, acts.png, svd.png (fewer for a quantized
// model without a transform) and returns the paths. Throws bwla::Error when
// PLplot is unavailable (at build time or no PNG device at run time).
std::vector<std::string> write_inspect_plots(const InspectData& d, const std::string& dir,
                                             const std::string& prefix);

}  // namespace bwla
