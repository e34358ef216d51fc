// Next-token sampling: greedy, temperature, top-k, top-p, seeded.
#pragma once
#include <cstdint>

#include "core/rng.h"

namespace bwla {

struct SamplingParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}
  // logits of length vocab; may be modified.
  int sample(float* logits, int vocab);

 private:
  SamplingParams p_;
  Rng rng_;
};

int argmax(const float* x, int n);

}  // namespace bwla
