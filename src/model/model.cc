#include "model/model.h"

#include <unistd.h>

#include <cstdlib>

#include "core/error.h"
#include "core/log.h"
#include "model/ops.h"
#include "model/packed_model.h"
#include "model/quant_model.h"

namespace bwla {

std::string layer_tensor_name(int layer, const char* suffix) {
  return fmt::format("model.layers.{}.{}", layer, suffix);
}

std::string linear_tensor_prefix(int layer, int id) {
  const bool attn = id <= kO;
  return fmt::format("model.layers.{}.{}.{}", layer, attn ? "self_attn" : "mlp", linear_name(id));
}

std::vector<float> read_f32(const TensorStore& st, const std::string& name,
                            std::vector<int64_t> expect) {
  const TensorView& t = st.get(name);
  if (t.shape != expect)
    fail("'{}': tensor '{}' has shape {} but config.json implies [{}]", t.file, name,
         t.shape_str(), fmt::join(expect, ", "));
  return t.to_f32();
}

void load_layer_norms(const TensorStore& st, const ModelConfig& c, int l, LayerWeights& L) {
  L.attn_norm = read_f32(st, layer_tensor_name(l, "input_layernorm.weight"), {c.hidden});
  L.mlp_norm = read_f32(st, layer_tensor_name(l, "post_attention_layernorm.weight"), {c.hidden});
  if (c.qk_norm) {
    L.q_norm = read_f32(st, layer_tensor_name(l, "self_attn.q_norm.weight"), {c.head_dim});
    L.k_norm = read_f32(st, layer_tensor_name(l, "self_attn.k_norm.weight"), {c.head_dim});
  }
}

bool want_lazy_weights(const TensorStore& st, const ModelConfig& c) {
  if (const char* e = std::getenv("BWLA_LAZY_WEIGHTS")) return std::string(e) == "1";
  const TensorView& t = st.get(linear_tensor_prefix(0, kQ) + ".weight");
  if (t.dtype != DType::BF16 && t.dtype != DType::F16) return false;
  const double fp32_bytes = 4.0 * (double)c.n_params();
  const double avail = (double)sysconf(_SC_AVPHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  return fp32_bytes > 0.8 * avail;
}

LayerWeights load_dense_layer(const TensorStore& st, const ModelConfig& c, int l, bool lazy) {
  LayerWeights L;
  load_layer_norms(st, c, l, L);
  for (int id = 0; id < kNumLinears; ++id) {
    std::string p = linear_tensor_prefix(l, id);
    bool has_bias = (id <= kV && c.qkv_bias) || (id == kO && c.o_bias) || (id >= kGate && c.mlp_bias);
    std::vector<float> bias;
    if (has_bias) bias = read_f32(st, p + ".bias", {c.linear_out(id)});
    const TensorView& tv = st.get(p + ".weight");
    if (lazy && (tv.dtype == DType::BF16 || tv.dtype == DType::F16)) {
      BWLA_CHECK(tv.shape == (std::vector<int64_t>{c.linear_out(id), c.linear_in(id)}),
                 "'{}': tensor '{}' has shape {} but config.json implies [{}, {}]", tv.file,
                 p + ".weight", tv.shape_str(), c.linear_out(id), c.linear_in(id));
      L.lin[id] = std::make_unique<LazyDenseLinear>(c.linear_out(id), c.linear_in(id), &tv,
                                                    std::move(bias));
      continue;
    }
    auto w = read_f32(st, p + ".weight", {c.linear_out(id), c.linear_in(id)});
    L.lin[id] = std::make_unique<DenseLinear>(c.linear_out(id), c.linear_in(id), std::move(w), std::move(bias));
  }
  return L;
}

std::unique_ptr<Model> Model::load_skeleton(const std::string& dir) {
  auto m = std::make_unique<Model>();
  m->dir = dir;
  m->cfg = ModelConfig::load(dir);
  m->store = std::make_shared<TensorStore>(dir);
  const auto& c = m->cfg;
  m->rope = std::make_shared<Rope>(c);
  m->embed = read_f32(*m->store, "model.embed_tokens.weight", {c.vocab, c.hidden});
  m->final_norm = read_f32(*m->store, "model.norm.weight", {c.hidden});
  if (c.tie_embeddings) {
    m->lm_head = std::make_unique<DenseLinear>(c.vocab, c.hidden, m->embed.data());
  } else {
    auto w = read_f32(*m->store, "lm_head.weight", {c.vocab, c.hidden});
    m->lm_head = std::make_unique<DenseLinear>(c.vocab, c.hidden, std::move(w));
  }
  m->layers.resize(c.n_layers);
  return m;
}

std::unique_ptr<Model> Model::load(const std::string& dir) {
  auto m = load_skeleton(dir);
  if (is_packed_config(m->cfg)) {
    load_packed_layers(*m);
  } else if (is_quantized_config(m->cfg)) {
    load_quantized_layers(*m);
  } else {
    const bool lazy = want_lazy_weights(*m->store, m->cfg);
    if (lazy) log_info("{}: fp32 weights would not fit in memory; converting 16-bit weights per layer on use", dir);
    for (int l = 0; l < m->cfg.n_layers; ++l)
      m->layers[l] = load_dense_layer(*m->store, m->cfg, l, lazy);
  }
  return m;
}

size_t Model::param_bytes() const {
  size_t b = embed.size() * 4 + final_norm.size() * 4;
  if (!cfg.tie_embeddings) b += lm_head->param_bytes();
  for (auto& L : layers) {
    b += (L.attn_norm.size() + L.mlp_norm.size() + L.q_norm.size() + L.k_norm.size()) * 4;
    for (auto& lin : L.lin)
      if (lin) b += lin->param_bytes();
  }
  return b;
}

}  // namespace bwla
