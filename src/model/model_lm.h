// LanguageModel adapter over a Model with its own KV cache.
#pragma once
#include "model/forward.h"
#include "model/lm.h"

namespace bwla {

class ModelLM : public LanguageModel {
 public:
  // ctx <= 0: the model's max_position_embeddings.
  ModelLM(const Model& m, int ctx = 0);
  int vocab_size() const override { return m_.cfg.vocab; }
  int max_context() const override { return cache_.max_ctx; }
  void reset() override { cache_.pos = 0; }
  int position() const override { return cache_.pos; }
  void truncate(int n) override;
  void append(const int* tokens, int n, float* logits) override;
  const Model& model() const { return m_; }

 private:
  const Model& m_;
  KVCache cache_;
};

}  // namespace bwla
