// Quantizes one decoder linear given its calibration statistics: optional
// input transform (Hadamard / learned OKT), optional PSP low-rank branch, the
// weight quantizer on the transformed weights with the transformed XᵀX, and
// the activation clip ratio search.
#pragma once
#include <memory>

#include "format/fake_quant_linear.h"
#include "pipeline/options.h"

namespace bwla {

struct LinearStats {
  MatrixD xtx;       // Σ x xᵀ over calibration tokens [in, in]
  long n_tokens = 0;
  MatrixRM sample;   // up to act_sample_rows input rows [n, in]
};

struct LinearQuantReport {
  std::string name;
  double rel_out_error = 0;  // ‖X·Wᵀ − f̂(X)‖ / ‖X·Wᵀ‖ on the sample (weights + activations)
  double rel_w_error = 0;    // ‖X·Wᵀ − X·Ŵᵀ‖ / ‖X·Wᵀ‖ on the sample (weights only)
  double storage_bits = 0;   // everything this linear stores
  long n_weights = 0;
  float act_clip = 1;
  double seconds = 0;
  json extra;  // method-specific diagnostics (OKT objective, PSP residual, ...)
  json to_json() const;
};

// release_xtx (optional): &st.xtx when no other linear needs it (a slot of
// one linear): freed as soon as the transformed copy exists, so the two are
// not held together through the Hessian and PSP (down_proj at the Llama-2-7B
// shape: 0.97 GB each).
std::unique_ptr<FakeQuantLinear> quantize_linear(const MatrixRM& w, const std::vector<float>& bias,
                                                 const LinearStats& st, const QuantizeOptions& o,
                                                 uint64_t transform_seed, LinearQuantReport& rep,
                                                 MatrixD* release_xtx = nullptr);

}  // namespace bwla
