// WikiText-2 style perplexity: the whole text tokenized once, split into
// non-overlapping windows of ctx tokens (remainder dropped), each window run
// from an empty cache; PPL = exp(mean next-token NLL over every window).
#pragma once
#include <vector>

#include "model/model.h"

namespace bwla {

struct PplOptions {
  int ctx = 512;
  long max_windows = 0;  // 0 = all
  bool progress = true;
};

struct PplResult {
  double ppl = 0, mean_nll = 0;
  long tokens_scored = 0;  // predictions made (ctx - 1 per window)
  long tokens_total = 0;   // tokens in the file
  int windows = 0;
  double seconds = 0, tokens_per_s = 0;
};

PplResult perplexity(const Model& m, const std::vector<int>& tokens, const PplOptions& opt);

// log-softmax of logits[label] computed stably in double.
double token_logprob(const float* logits, int vocab, int label);

}  // namespace bwla
