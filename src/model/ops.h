// Elementwise / normalisation / positional ops of the decoder (fp32).
#pragma once
#include <vector>

#include "model/config.h"

namespace bwla {

// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w   for n rows of length dim.
void rmsnorm(const float* x, const float* w, float* out, int n, int dim, double eps);

// Rotary embedding in the Hugging Face rotate-half convention: for a head
// vector v of length d and i < d/2, (v_i, v_{i+d/2}) is rotated by angle
// pos·inv_freq_i.
class Rope {
 public:
  Rope(const ModelConfig& cfg);
  // Applies to n rows, each holding n_heads vectors of length head_dim; row t
  // is at position pos0 + t.
  void apply(float* x, int n, int n_heads, int pos0) const;
  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  int head_dim_;
  std::vector<float> inv_freq_;
};

// Llama-3 style frequency scaling (exposed for tests).
std::vector<float> rope_inv_freq(const ModelConfig& cfg);

// a[i] = silu(a[i]) * b[i]  (kernels/vexp.h: the same bits under every ISA)
void silu_mul(float* a, const float* b, long n);

// In-place softmax of n values (kernels/vexp.h's softmax_vec).
void softmax(float* x, int n);

}  // namespace bwla
