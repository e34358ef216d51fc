#include "model/model_lm.h"

#include "core/error.h"

namespace bwla {

namespace {
int checked_ctx(const Model& m, int ctx) {
  // Positions past max_position_embeddings were never trained: scores there
  // would not be the model's.
  BWLA_CHECK(ctx <= m.cfg.max_pos, "--ctx {} exceeds the model's max_position_embeddings {}",
             ctx, m.cfg.max_pos);
  return ctx > 0 ? ctx : m.cfg.max_pos;
}
}  // namespace

ModelLM::ModelLM(const Model& m, int ctx) : m_(m), cache_(m.cfg, checked_ctx(m, ctx)) {}

void ModelLM::truncate(int n) {
  BWLA_ASSERT(n >= 0 && n <= cache_.pos, "truncate to {} with {} cached", n, cache_.pos);
  cache_.pos = n;
}

void ModelLM::append(const int* tokens, int n, float* logits) {
  forward_tokens(m_, tokens, n, cache_, logits, true);
}

}  // namespace bwla
