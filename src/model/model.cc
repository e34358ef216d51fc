#include "model/model.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "model/ops.h"
#include "model/packed_model.h"
#include "model/q4_linear.h"
#include "model/q8_linear.h"
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

namespace {
// Whether a tensor's data may be read in place as an array of its dtype (a
// safetensors file does not promise alignment; the views below need it).
bool elements_aligned(const TensorView& t) {
  return reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) == 0;
}
}  // namespace

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

namespace {

// An I8 tensor of a packed model (docs/FORMAT.md, version 2) with its per-row
// scale `<name>_scale` (F32 [rows]): a view into the mapping plus the scales.
struct Q8Tensor {
  const int8_t* w;
  std::vector<float> scale;
};

Q8Tensor read_q8(const TensorStore& st, const ModelConfig& c, const std::string& name,
                 int64_t rows, int64_t cols) {
  const TensorView& t = st.get(name);
  BWLA_CHECK(is_packed_config(c),
             "'{}': tensor '{}' is I8; 8-bit embeddings and heads are only read from {} models",
             t.file, name, kPackedQuantMethod);
  BWLA_CHECK(t.shape == (std::vector<int64_t>{rows, cols}),
             "'{}': tensor '{}' has shape {} but config.json implies [{}, {}]", t.file, name,
             t.shape_str(), rows, cols);
  BWLA_CHECK(st.has(name + "_scale"), "'{}': I8 tensor '{}' has no per-row scale tensor '{}'",
             t.file, name, name + "_scale");
  const TensorView& s = st.get(name + "_scale");
  BWLA_CHECK(s.dtype == DType::F32 && s.shape == std::vector<int64_t>{rows},
             "'{}': tensor '{}' has dtype {} shape {}, expected F32 [{}]", s.file, s.name,
             dtype_name(s.dtype), s.shape_str(), rows);
  Q8Tensor q{reinterpret_cast<const int8_t*>(t.data), s.to_f32()};
  for (size_t i = 0; i < q.scale.size(); ++i)
    BWLA_CHECK(std::isfinite(q.scale[i]) && q.scale[i] > 0,
               "'{}': tensor '{}' row {} has scale {} (must be finite and > 0)", s.file, s.name, i,
               q.scale[i]);
  return q;
}

// A U8 tensor of a packed model: 4-bit nibbles [rows, q4_row_bytes(cols)] with
// fp16 group scales `<name>_scale` [rows, q4_groups(cols)] (kernels/q4_gemm.h).
Q4Matrix read_q4(const TensorStore& st, const ModelConfig& c, const std::string& name,
                 int64_t rows, int64_t cols) {
  const TensorView& t = st.get(name);
  BWLA_CHECK(is_packed_config(c),
             "'{}': tensor '{}' is U8; 4-bit embeddings and heads are only read from {} models",
             t.file, name, kPackedQuantMethod);
  const int64_t rb = (int64_t)q4_row_bytes((int)cols), G = q4_groups((int)cols);
  BWLA_CHECK(t.shape == (std::vector<int64_t>{rows, rb}),
             "'{}': 4-bit tensor '{}' has shape {} but config.json implies [{}, {}] ({} columns)",
             t.file, name, t.shape_str(), rows, rb, cols);
  BWLA_CHECK(st.has(name + "_scale"), "'{}': U8 tensor '{}' has no group scale tensor '{}'",
             t.file, name, name + "_scale");
  const TensorView& s = st.get(name + "_scale");
  BWLA_CHECK(s.dtype == DType::F16 && s.shape == (std::vector<int64_t>{rows, G}),
             "'{}': tensor '{}' has dtype {} shape {}, expected F16 [{}, {}]", s.file, s.name,
             dtype_name(s.dtype), s.shape_str(), rows, G);
  BWLA_CHECK(elements_aligned(s), "'{}': tensor '{}' data does not start at an even offset (F16 "
             "scales are read in place)", s.file, s.name);
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(s.data);
  for (int64_t i = 0; i < rows * G; ++i)
    BWLA_CHECK((sc[i] & 0x7c00) != 0x7c00, "'{}': tensor '{}' row {} group {} has scale {} (must be finite)",
               s.file, s.name, i / G, i % G, f16_to_f32(sc[i]));
  return Q4Matrix{(int)rows, (int)cols, reinterpret_cast<const uint8_t*>(t.data), sc};
}

}  // namespace

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

std::unique_ptr<Model> Model::load_skeleton(const std::string& dir) {
  auto m = std::make_unique<Model>();
  m->dir = dir;
  m->cfg = ModelConfig::load(dir);
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
  if (et.dtype == DType::U8) {
    const Q4Matrix q = read_q4(st, c, ename, c.vocab, c.hidden);
    m->embed_view = &et;
    m->embed_q4_scale = &st.get(ename + "_scale");
    if (c.tie_embeddings)
      m->lm_head = std::make_unique<Q4Linear>(c.vocab, c.hidden, q.w, q.scale, m->store);
  } else if (et.dtype == DType::I8) {
    Q8Tensor q = read_q8(st, c, ename, c.vocab, c.hidden);
    m->embed_view = &et;
    m->embed_scale = q.scale;
    if (c.tie_embeddings)
      m->lm_head = std::make_unique<Q8Linear>(c.vocab, c.hidden, q.w, std::move(q.scale), m->store);
  } else if (is_packed_config(c) && !c.tie_embeddings &&
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
    if (st.get("lm_head.weight").dtype == DType::U8) {
      const Q4Matrix q = read_q4(st, c, "lm_head.weight", c.vocab, c.hidden);
      m->lm_head = std::make_unique<Q4Linear>(c.vocab, c.hidden, q.w, q.scale, m->store);
    } else if (st.get("lm_head.weight").dtype == DType::I8) {
      Q8Tensor q = read_q8(st, c, "lm_head.weight", c.vocab, c.hidden);
      m->lm_head = std::make_unique<Q8Linear>(c.vocab, c.hidden, q.w, std::move(q.scale), m->store);
    } else {
      auto w = read_f32(st, "lm_head.weight", {c.vocab, c.hidden});
      m->lm_head = std::make_unique<DenseLinear>(c.vocab, c.hidden, std::move(w));
    }
  }
  m->layers.resize(c.n_layers);
  return m;
}

std::unique_ptr<Model> Model::load(const std::string& dir, bool prepack_dense) {
  auto m = load_skeleton(dir);
  if (is_packed_config(m->cfg)) {
    load_packed_layers(*m);
  } else if (is_quantized_config(m->cfg)) {
    load_quantized_layers(*m);
  } else {
    const bool lazy = want_lazy_weights(*m->store, m->cfg);
    if (lazy) log_info("{}: fp32 weights would not fit in memory; converting 16-bit weights per layer on use", dir);
    for (int l = 0; l < m->cfg.n_layers; ++l) {
      m->layers[l] = load_dense_layer(*m->store, m->cfg, l, lazy);
      if (prepack_dense)
        for (auto& lin : m->layers[l].lin)
          if (auto* d = dynamic_cast<DenseLinear*>(lin.get())) d->prepack();
    }
  }
  check_all_tensors_used(*m->store, m->cfg);
  // An untied fp32 head owns its weights; a tied one is a view of the embedding
  // table (still needed for lookups), so it keeps the plain layout.
  if (prepack_dense)
    if (auto* d = dynamic_cast<DenseLinear*>(m->lm_head.get())) d->prepack();
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
