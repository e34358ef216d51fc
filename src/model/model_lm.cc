#include "model/model_lm.h"

#include "core/error.h"

namespace bwla {

ModelLM::ModelLM(const Model& m, int ctx) : m_(m), cache_(m.cfg, ctx > 0 ? ctx : m.cfg.max_pos) {}

void ModelLM::truncate(int n) {
  BWLA_ASSERT(n >= 0 && n <= cache_.pos, "truncate to {} with {} cached", n, cache_.pos);
  cache_.pos = n;
}

void ModelLM::append(const int* tokens, int n, float* logits) {
  forward_tokens(m_, tokens, n, cache_, logits, true);
}

}  // namespace bwla
