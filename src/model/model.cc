#include "model/model.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "kernels/q4_gemm.h"
#include "model/ops.h"

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

bool elements_aligned(const TensorView& t) {
  return reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) == 0;
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
    if (lazy && (tv.dtype == DType::BF16 || tv.dtype == DType::F16) && elements_aligned(tv)) {
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

void check_all_tensors_used(const TensorStore& st, const ModelConfig& c) {
  std::vector<std::string> unused;
  for (auto& n : st.unused())
    // HF Llama checkpoints of 2023 stored RoPE's inverse frequencies as a
    // buffer; bwla derives them from config.json (rope_theta).
    if (n.find("rotary_emb.inv_freq") == std::string::npos) unused.push_back(n);
  BWLA_CHECK(unused.empty(),
             "'{}': {} tensor(s) in the checkpoint are not used by its config.json ({} layers, "
             "{}), e.g. '{}'; a config that does not match its weights would run a different "
             "model",
             st.dir(), unused.size(), c.n_layers, c.arch_name, unused.front());
}

void alias_tied_embedding(TensorStore& st, const ModelConfig& c) {
  // A tied table saved once under the head's name, without a metadata alias.
  if (c.tie_embeddings && !st.has("model.embed_tokens.weight") && st.has("lm_head.weight"))
    st.add_alias("model.embed_tokens.weight", "lm_head.weight");
}

const TableReader* TableHooks::find(DType d) const {
  for (const auto& r : readers)
    if (r.dtype == d) return &r;
  return nullptr;
}

std::unique_ptr<Model> Model::load_skeleton(const std::string& dir, const TableHooks& hooks) {
  return load_skeleton(dir, ModelConfig::load(dir), hooks);
}

std::unique_ptr<Model> Model::load_skeleton(const std::string& dir, ModelConfig cfg,
                                            const TableHooks& hooks) {
  auto m = std::make_unique<Model>();
  m->dir = dir;
  m->cfg = std::move(cfg);
  {
    auto st = std::make_shared<TensorStore>(dir);
    alias_tied_embedding(*st, m->cfg);
    m->store = st;
  }
  const auto& c = m->cfg;
  const TensorStore& st = *m->store;
  // Layers past num_hidden_layers would be dropped silently: refuse before any work.
  for (const auto& n : st.names()) {
    int l = -1;
    if (std::sscanf(n.c_str(), "model.layers.%d.", &l) == 1)
      BWLA_CHECK(l >= 0 && l < c.n_layers,
                 "'{}': tensor '{}' belongs to layer {}, but config.json has num_hidden_layers {}",
                 dir, n, l, c.n_layers);
  }
  m->rope = std::make_shared<Rope>(c);
  const std::string ename = "model.embed_tokens.weight";
  const TensorView& et = st.get(ename);
  if (const TableReader* r = hooks.find(et.dtype)) {
    auto head = r->embed(*m, ename);
    if (c.tie_embeddings) m->lm_head = std::move(head);
  } else if (hooks.map_16bit_tables && hooks.map_16bit_tables(c) && !c.tie_embeddings &&
             (et.dtype == DType::F16 || et.dtype == DType::BF16) && elements_aligned(et)) {
    BWLA_CHECK(et.shape == (std::vector<int64_t>{c.vocab, c.hidden}),
               "'{}': tensor '{}' has shape {} but config.json implies [{}, {}]", et.file, ename,
               et.shape_str(), c.vocab, c.hidden);
    m->embed_view = &et;  // converted one row per looked-up token
  } else {
    m->embed = read_f32(st, ename, {c.vocab, c.hidden});
    if (c.tie_embeddings)
      m->lm_head = std::make_unique<DenseLinear>(c.vocab, c.hidden, m->embed.data());
  }
  m->final_norm = read_f32(st, "model.norm.weight", {c.hidden});
  if (c.tie_embeddings && st.has("lm_head.weight")) {
    // Some writers store the tied table twice: it must be the same bytes.
    const TensorView& h = st.get("lm_head.weight");
    BWLA_CHECK(h.dtype == et.dtype && h.shape == et.shape && h.nbytes == et.nbytes &&
                   std::memcmp(h.data, et.data, h.nbytes) == 0,
               "'{}': tie_word_embeddings is true but 'lm_head.weight' differs from '{}'", dir,
               ename);
  }
  if (!c.tie_embeddings) {
    const TensorView& h = st.get("lm_head.weight");
    if (const TableReader* r = hooks.find(h.dtype)) {
      m->lm_head = r->head(*m, "lm_head.weight");
    } else {
      auto w = read_f32(st, "lm_head.weight", {c.vocab, c.hidden});
      m->lm_head = std::make_unique<DenseLinear>(c.vocab, c.hidden, std::move(w));
    }
  }
  m->layers.resize(c.n_layers);
  return m;
}

void load_dense_layers(Model& m, bool prepack_dense) {
  const bool lazy = want_lazy_weights(*m.store, m.cfg);
  if (lazy)
    log_info("{}: fp32 weights would not fit in memory; converting 16-bit weights per layer on use",
             m.dir);
  for (int l = 0; l < m.cfg.n_layers; ++l) {
    m.layers[l] = load_dense_layer(*m.store, m.cfg, l, lazy);
    if (prepack_dense)
      for (auto& lin : m.layers[l].lin)
        if (auto* d = dynamic_cast<DenseLinear*>(lin.get())) d->prepack();
  }
}

void finish_load(Model& m, bool prepack_dense) {
  check_all_tensors_used(*m.store, m.cfg);
  // An untied fp32 head owns its weights; a tied one is a view of the embedding
  // table (still needed for lookups), so it keeps the plain layout.
  if (prepack_dense)
    if (auto* d = dynamic_cast<DenseLinear*>(m.lm_head.get())) d->prepack();
}

std::unique_ptr<Model> Model::load(const std::string& dir, bool prepack_dense) {
  // The config first: a quantized model's tables would otherwise fail the
  // skeleton read with a dtype message that does not say what to do.
  ModelConfig cfg = ModelConfig::load(dir);
  BWLA_CHECK(!cfg.raw.contains("quantization_config"),
             "'{}': config.json has a quantization_config: a bwla quantized model is read by "
             "load_model (format/model_loader.h), not by the fp32 checkpoint loader",
             dir);
  auto m = load_skeleton(dir, std::move(cfg), {});
  load_dense_layers(*m, prepack_dense);
  finish_load(*m, prepack_dense);
  return m;
}

void Model::embed_row(int token, float* out) const {
  const size_t H = (size_t)cfg.hidden, off = (size_t)token * H;
  if (!embed_view) {
    std::memcpy(out, embed.data() + off, sizeof(float) * H);
    return;
  }
  switch (embed_view->dtype) {
    case DType::U8: {
      const Q4Matrix q{cfg.vocab, cfg.hidden, reinterpret_cast<const uint8_t*>(embed_view->data),
                       reinterpret_cast<const uint16_t*>(embed_q4_scale->data)};
      q4_dequantize_row(q, token, out);
      return;
    }
    case DType::I8: {
      const int8_t* r = reinterpret_cast<const int8_t*>(embed_view->data) + off;
      const float s = embed_scale[token];
      for (size_t j = 0; j < H; ++j) out[j] = s * (float)r[j];
      return;
    }
    case DType::F16:
    case DType::BF16: {
      const uint16_t* r = reinterpret_cast<const uint16_t*>(embed_view->data) + off;
      const bool bf = embed_view->dtype == DType::BF16;
      for (size_t j = 0; j < H; ++j) out[j] = bf ? bf16_to_f32(r[j]) : f16_to_f32(r[j]);
      return;
    }
    default: BWLA_ASSERT(false, "embedding view dtype {}", dtype_name(embed_view->dtype));
  }
}

size_t Model::embed_table_bytes() const {
  if (!embed_view) return embed.size() * 4;
  return embed_view->nbytes + embed_scale.size() * 4 + (embed_q4_scale ? embed_q4_scale->nbytes : 0);
}

bool Model::head_shares_embedding() const {
  auto* d = dynamic_cast<const DenseLinear*>(lm_head.get());
  return d && !d->prepacked() && d->weight() == embed.data();
}

size_t Model::param_bytes() const {
  size_t b = embed_table_bytes() + final_norm.size() * 4;
  if (!head_shares_embedding()) b += lm_head->param_bytes();
  for (auto& L : layers) {
    b += (L.attn_norm.size() + L.mlp_norm.size() + L.q_norm.size() + L.k_norm.size()) * 4;
    for (auto& lin : L.lin)
      if (lin) b += lin->param_bytes();
  }
  return b;
}

size_t Model::decode_bytes_per_token() const {
  // Every parameter is read once per token except the embedding table (one row).
  size_t b = param_bytes() - embed_table_bytes() +
             embed_table_bytes() / (size_t)cfg.vocab;  // one row
  if (head_shares_embedding()) b += lm_head->param_bytes();
  return b;
}

}  // namespace bwla
