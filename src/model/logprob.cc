#include "model/logprob.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bwla {

double log_sum_exp(const float* x, int n) {
  BWLA_ASSERT(n >= 1, "log_sum_exp of {} values", n);
  double m = x[0];
  for (int i = 1; i < n; ++i) m = std::max(m, (double)x[i]);
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp((double)x[i] - m);
  return m + std::log(s);
}

double token_logprob(const float* logits, int vocab, int token) {
  BWLA_CHECK(token >= 0 && token < vocab,
             "token id {} is outside the model's vocabulary ({}): tokenizer/model mismatch?",
             token, vocab);
  return (double)logits[token] - log_sum_exp(logits, vocab);
}

}  // namespace bwla
