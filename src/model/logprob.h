// Log-probabilities from a row of logits, in double: the one definition that
// perplexity, zero-shot scoring and the server's logprobs share, so the same
// logits give the same numbers everywhere.
#pragma once

namespace bwla {

// log Σ exp(x_i), with the maximum subtracted first.
double log_sum_exp(const float* x, int n);

// log softmax(logits)[token]; a token outside [0, vocab) is a bwla::Error
// (a tokenizer / model mismatch).
double token_logprob(const float* logits, int vocab, int token);

}  // namespace bwla
