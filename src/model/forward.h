// The fp32 reference forward (the oracle every other path is checked against)
// and the same code path for fake-quant / packed linears: batched prefill,
// single-token decode with a KV cache, and per-layer calls for calibration.
#pragma once
#include <vector>

#include "model/model.h"
#include "model/ops.h"

namespace bwla {

struct KVCache {
  KVCache(const ModelConfig& c, int max_ctx);
  int max_ctx;
  int kv_dim;
  int pos = 0;
  std::vector<std::vector<float>> k, v;  // per layer [max_ctx, kv_dim]
};

// Observer of intermediate tensors (tests, calibration statistics).
class Capture {
 public:
  virtual ~Capture() = default;
  // The input of the linears reading slot (see linear_input_slot), [n, dim].
  virtual void linear_input(int layer, int slot, const float* x, int n, int dim) {}
  // Named intermediates: "attn_norm", "q", "k", "v" (after norm/RoPE), "attn",
  // "attn_out", "mlp_norm", "mlp_act", "mlp_out", "out".
  virtual void tensor(int layer, const char* name, const float* x, int n, int dim) {}
};

// Runs decoder layer L on hidden states x [n_seq * seq_len, hidden] in place.
// With a cache (n_seq must be 1) the tokens sit at positions cache->pos.. and
// attend to everything cached (the caller advances cache->pos afterwards).
// Without a cache every segment attends causally within itself from position 0.
void layer_forward(const ModelConfig& c, const Rope& rope, const LayerWeights& L, int layer,
                   float* x, int n_seq, int seq_len, KVCache* cache, Capture* cap = nullptr);

// layer_forward without a cache, in the four stages that each read the
// linears of one input slot only (quantization in true-sequential order: a
// stage's linears are quantized on the outputs of the already-quantized ones).
// layer_forward is exactly these four calls, so the results are bit-identical.
// 1. att [n, q_dim] = attention over rmsnorm(x) (q/k/v, qk-norm, RoPE, causal per segment).
void layer_attention(const ModelConfig& c, const Rope& rope, const LayerWeights& L, int layer,
                     const float* x, int n_seq, int seq_len, float* att, Capture* cap = nullptr);
// 2. x += o_proj(att).
void layer_attn_residual(const ModelConfig& c, const LayerWeights& L, int layer, const float* att,
                         int n, float* x, Capture* cap = nullptr);
// 3. act [n, intermediate] = silu(gate(h)) * up(h), h = rmsnorm(x).
void layer_mlp_act(const ModelConfig& c, const LayerWeights& L, int layer, const float* x, int n,
                   float* act, Capture* cap = nullptr);
// 4. x += down_proj(act).
void layer_mlp_residual(const ModelConfig& c, const LayerWeights& L, int layer, const float* act,
                        int n, float* x, Capture* cap = nullptr);

// Embeds n tokens at cache.pos.., runs every layer, the final norm and the
// head, and advances cache.pos. logits: [n, vocab] if all_logits else [vocab]
// for the last token (may be null to skip the head).
void forward_tokens(const Model& m, const int* tokens, int n, KVCache& cache, float* logits,
                    bool all_logits, Capture* cap = nullptr);

// One decode step for n independent sequences (continuous batching): token i
// is appended to caches[i] at caches[i]->pos, attends only to that cache, and
// its logits go to logits[i * vocab]; every cache's pos advances by one. The
// linears run once on all n rows (one packed GEMM instead of n GEMVs), the
// attention per row. Rows are independent: each row's logits equal
// forward_tokens on that sequence alone up to the linears' accumulation order
// for n rows vs one (exact for the integer W1A6 sign planes).
void forward_decode_batch(const Model& m, const int* tokens, int n, KVCache* const* caches,
                          float* logits);

// Embedding lookup with a range check (error names the token and vocab).
void embed_tokens(const Model& m, const int* tokens, int n, float* x);

}  // namespace bwla
