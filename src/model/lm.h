// The interface evaluation code uses to score text: an incremental causal LM
// with a KV cache that can be truncated (so choices sharing a context reuse it).
#pragma once
#include <vector>

namespace bwla {

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual int vocab_size() const = 0;
  // Longest sequence the model accepts (positions 0..max_context()-1).
  virtual int max_context() const = 0;
  // Clears the cache (position becomes 0).
  virtual void reset() = 0;
  // Number of tokens currently in the cache.
  virtual int position() const = 0;
  // Drops cached tokens at positions >= n (n <= position()).
  virtual void truncate(int n) = 0;
  // Appends n tokens after the cached ones and writes their logits to
  // logits[n * vocab_size()] (row i predicts the token after tokens[i]).
  // Throws bwla::Error if position() + n > max_context().
  virtual void append(const int* tokens, int n, float* logits) = 0;
};

}  // namespace bwla
