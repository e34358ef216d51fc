// A loaded model: config, embeddings, per-layer weights (each linear behind
// the Linear interface so fp32, fake-quant and packed layers are swappable).
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"
#include "model/linear.h"

namespace bwla {

class Rope;

struct LayerWeights {
  std::vector<float> attn_norm, mlp_norm;  // [hidden]
  std::vector<float> q_norm, k_norm;       // [head_dim], Qwen3 only
  std::unique_ptr<Linear> lin[kNumLinears];
};

// HF tensor name of layer l's parameter, e.g. "model.layers.3.self_attn.q_proj.weight".
std::string layer_tensor_name(int layer, const char* suffix);
std::string linear_tensor_prefix(int layer, int linear_id);  // "model.layers.3.self_attn.q_proj"

// Reads a floating tensor, checks its shape, converts to fp32. Errors name the
// file, the key and both shapes.
std::vector<float> read_f32(const TensorStore& st, const std::string& name,
                            std::vector<int64_t> expect_shape);

// Reads layer l's RMSNorm weights (and Qwen3 q/k norms) into L.
void load_layer_norms(const TensorStore& st, const ModelConfig& cfg, int l, LayerWeights& L);

// Loads layer l's fp32 weights (dense linears) from the store. lazy: keep
// 16-bit tensors memory-mapped and convert on use (LazyDenseLinear).
LayerWeights load_dense_layer(const TensorStore& st, const ModelConfig& cfg, int l,
                              bool lazy = false);
// True when the decoder's fp32 copy would not fit in available memory (or
// BWLA_LAZY_WEIGHTS=1); 16-bit checkpoints are then converted per layer on use.
bool want_lazy_weights(const TensorStore& st, const ModelConfig& cfg);
// Whether a tensor's data may be read in place as an array of its dtype (a
// safetensors file does not promise alignment; in-place views need it).
bool elements_aligned(const TensorView& t);

class Model;

// A storage of the embedding table or head that a layer above the model
// defines (format/: the 8- and 4-bit tables of packed models), by tensor dtype.
struct TableReader {
  DType dtype;
  // Keeps the table `name` in the mapping (m.embed_view and its scales) and
  // returns the head a tied model uses.
  std::unique_ptr<Linear> (*embed)(Model& m, const std::string& name);
  // Reads the untied head `name`.
  std::unique_ptr<Linear> (*head)(const Model& m, const std::string& name);
};

struct TableHooks {
  std::span<const TableReader> readers;
  // Whether an untied F16 / BF16 embedding table stays mapped (converted per
  // looked-up row) instead of being copied to fp32.
  bool (*map_16bit_tables)(const ModelConfig& c) = nullptr;
  const TableReader* find(DType d) const;
};

class Model {
 public:
  ModelConfig cfg;
  std::string dir;
  std::vector<float> embed;       // [vocab, hidden] fp32, or empty when embed_view is set
  // Packed models: the table stays in the memory-mapped file (F16, BF16, I8
  // with one fp32 scale per row in embed_scale, or U8 4-bit groups with the
  // fp16 group scales in embed_q4_scale) and a lookup converts one row.
  const TensorView* embed_view = nullptr;
  std::vector<float> embed_scale;
  const TensorView* embed_q4_scale = nullptr;
  std::vector<float> final_norm;  // [hidden]
  std::unique_ptr<Linear> lm_head;
  std::vector<LayerWeights> layers;
  std::shared_ptr<TensorStore> store;
  std::shared_ptr<const Rope> rope;  // frequencies derived from cfg

  // Loads an unquantized checkpoint (fp32 / fp16 / bf16 dense linears); a
  // directory with a quantization_config is refused: bwla's own formats sit
  // above the model and are read by format/model_loader.h's load_model.
  // prepack_dense: fp32 dense linears (and an untied fp32 head) are
  // re-laid-out for PrepackedGemm when it is enabled and their plain weights
  // freed (inference only: the quantization pipeline and tests reading
  // DenseLinear::weight() load without it).
  static std::unique_ptr<Model> load(const std::string& dir, bool prepack_dense = false);
  // Loads config, embeddings, norms and head only; layers are left empty. The
  // hooks read embedding / head storages that layers above define.
  static std::unique_ptr<Model> load_skeleton(const std::string& dir, const TableHooks& hooks = {});
  // The same from config.json already read (cfg of `dir`).
  static std::unique_ptr<Model> load_skeleton(const std::string& dir, ModelConfig cfg,
                                              const TableHooks& hooks);

  // Row `token` of the embedding table as fp32 (token checked by the caller).
  void embed_row(int token, float* out) const;
  // Bytes of the embedding table (fp32 copy or mapped table + scales).
  size_t embed_table_bytes() const;
  // Bytes of parameters held (embedding table counted once, also when tied).
  size_t param_bytes() const;
  // Bytes one decode step streams: every parameter except the embedding table,
  // of which one row is read (the head is read whole, also when tied).
  size_t decode_bytes_per_token() const;
  // Whether lm_head is the fp32 embedding table itself (tied, not re-stored).
  bool head_shares_embedding() const;
};

// tie_word_embeddings with only lm_head.weight stored: the embedding table
// reads it (a safetensors metadata alias is applied by TensorStore itself).
void alias_tied_embedding(TensorStore& st, const ModelConfig& c);
// Fills every layer of a skeleton with dense (fp32, or lazily converted
// 16-bit) linears.
void load_dense_layers(Model& m, bool prepack_dense);
// The checks and re-layouts after all layers are loaded: every tensor used,
// the untied fp32 head prepacked when asked.
void finish_load(Model& m, bool prepack_dense);
// Throws naming the first tensor of `st` that no loader has read (weights the
// config does not account for); call once a whole model has been loaded.
void check_all_tensors_used(const TensorStore& st, const ModelConfig& c);

}  // namespace bwla
