#include "io/output_path.h"
#include "export/gguf_export.h"

#include <filesystem>
#include <memory>

#include "core/error.h"
#include "io/mmap.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/model.h"

namespace bwla {

void permute_rope_rows_hf_to_gguf(float* w, int n_heads, int head_dim, int64_t cols) {
  BWLA_CHECK(head_dim % 2 == 0, "RoPE head_dim {} is odd", head_dim);
  const int half = head_dim / 2;
  std::vector<float> tmp((size_t)head_dim * cols);
  for (int h = 0; h < n_heads; ++h) {
    float* base = w + (size_t)h * head_dim * cols;
    for (int part = 0; part < 2; ++part)
      for (int i = 0; i < half; ++i)
        std::copy_n(base + (size_t)(part * half + i) * cols, cols,
                    tmp.data() + (size_t)(2 * i + part) * cols);
    std::copy(tmp.begin(), tmp.end(), base);
  }
}

namespace {

void check_exportable(const ModelConfig& c, const std::string& cfg_file) {
  BWLA_CHECK(c.arch == Arch::Llama || c.arch == Arch::Mistral,
             "{}: architecture '{}' cannot be exported as GGUF 'llama' (Llama/Mistral only)",
             cfg_file, c.arch_name);
  BWLA_CHECK(!c.raw.contains("quantization_config"),
             "{}: has a quantization_config; export-gguf writes floating-point checkpoints only",
             cfg_file);
  BWLA_CHECK(!c.qkv_bias && !c.o_bias && !c.mlp_bias,
             "{}: attention/MLP biases are not supported by the GGUF llama export", cfg_file);
  BWLA_CHECK(!c.qk_norm, "{}: q/k norms are not supported by the GGUF llama export", cfg_file);
  BWLA_CHECK(c.rope_scaling.type.empty(),
             "{}: rope_scaling '{}' is not supported by the GGUF llama export", cfg_file,
             c.rope_scaling.type);
  BWLA_CHECK(c.sliding_window == 0 || c.sliding_window >= c.max_pos,
             "{}: sliding_window {} < max_position_embeddings {} cannot be expressed in GGUF llama",
             cfg_file, c.sliding_window, c.max_pos);
}

GgufVocab load_vocab(const std::string& dir, const GgufExportOptions& opt) {
  if (!opt.tokenizer_model.empty()) return vocab_from_sentencepiece_model(opt.tokenizer_model);
  if (file_exists(dir + "/tokenizer.json")) return vocab_from_tokenizer_json(dir);
  if (file_exists(dir + "/tokenizer.model"))
    return vocab_from_sentencepiece_model(dir + "/tokenizer.model");
  fail("{}: no tokenizer.json or tokenizer.model (llama.cpp needs a vocabulary; pass "
       "--tokenizer-model FILE)",
       dir);
}

void write_vocab(GgufWriter& w, const GgufVocab& v) {
  w.set_string("tokenizer.ggml.model", v.model);
  if (v.model == "gpt2") w.set_string("tokenizer.ggml.pre", v.pre.empty() ? "default" : v.pre);
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) w.set_f32_array("tokenizer.ggml.scores", v.scores);
  w.set_i32_array("tokenizer.ggml.token_type", v.types);
  if (!v.merges.empty()) w.set_string_array("tokenizer.ggml.merges", v.merges);
  if (v.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", (uint32_t)v.bos);
  if (v.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", (uint32_t)v.eos);
  if (v.unk >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", (uint32_t)v.unk);
  if (v.pad >= 0) w.set_u32("tokenizer.ggml.padding_token_id", (uint32_t)v.pad);
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
}

}  // namespace

GgufExportReport export_gguf(const std::string& dir, const std::string& out,
                             const GgufExportOptions& opt) {
  check_output_file(out, {dir}, "-o", gguf_written_by_bwla);
  const std::string cfg_file = dir + "/config.json";
  ModelConfig c = ModelConfig::load(dir);
  check_exportable(c, cfg_file);
  GgufVocab vocab = load_vocab(dir, opt);
  fit_vocab(vocab, c.vocab);
  auto st = std::make_shared<TensorStore>(dir);
  alias_tied_embedding(*st, c);

  GgufWriter w;
  w.set_string(kGgufWriterKey, "bwla export-gguf");
  const std::string name = std::filesystem::path(dir).filename().string();
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", name.empty() ? "model" : name);
  w.set_u32("general.file_type", opt.type == GgmlType::F32 ? 0 : 1);  // ALL_F32 / MOSTLY_F16
  w.set_u32("llama.vocab_size", (uint32_t)c.vocab);
  w.set_u32("llama.context_length", (uint32_t)c.max_pos);
  w.set_u32("llama.embedding_length", (uint32_t)c.hidden);
  w.set_u32("llama.block_count", (uint32_t)c.n_layers);
  w.set_u32("llama.feed_forward_length", (uint32_t)c.intermediate);
  w.set_u32("llama.attention.head_count", (uint32_t)c.n_heads);
  w.set_u32("llama.attention.head_count_kv", (uint32_t)c.n_kv_heads);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", (float)c.rms_eps);
  w.set_f32("llama.rope.freq_base", (float)c.rope_theta);
  w.set_u32("llama.rope.dimension_count", (uint32_t)c.head_dim);
  if (c.head_dim * c.n_heads != c.hidden) {
    w.set_u32("llama.attention.key_length", (uint32_t)c.head_dim);
    w.set_u32("llama.attention.value_length", (uint32_t)c.head_dim);
  }
  write_vocab(w, vocab);

  const int64_t H = c.hidden, V = c.vocab;
  auto plain = [st](std::string hf, std::vector<int64_t> shape) {
    return [st, hf, shape](float* o) {
      auto v = read_f32(*st, hf, shape);
      std::copy(v.begin(), v.end(), o);
    };
  };
  auto roped = [st](std::string hf, std::vector<int64_t> shape, int heads, int hd) {
    return [st, hf, shape, heads, hd](float* o) {
      auto v = read_f32(*st, hf, shape);
      permute_rope_rows_hf_to_gguf(v.data(), heads, hd, shape[1]);
      std::copy(v.begin(), v.end(), o);
    };
  };
  const GgmlType mt = opt.type;
  w.add_tensor("token_embd.weight", mt, {V, H}, plain("model.embed_tokens.weight", {V, H}));
  for (int l = 0; l < c.n_layers; ++l) {
    auto blk = [l](const char* s) { return "blk." + std::to_string(l) + "." + s + ".weight"; };
    auto hf = [l](const char* s) { return layer_tensor_name(l, s); };
    const int64_t q = c.q_dim(), kv = c.kv_dim(), F = c.intermediate;
    w.add_tensor(blk("attn_norm"), GgmlType::F32, {H}, plain(hf("input_layernorm.weight"), {H}));
    w.add_tensor(blk("attn_q"), mt, {q, H},
                 roped(hf("self_attn.q_proj.weight"), {q, H}, c.n_heads, c.head_dim));
    w.add_tensor(blk("attn_k"), mt, {kv, H},
                 roped(hf("self_attn.k_proj.weight"), {kv, H}, c.n_kv_heads, c.head_dim));
    w.add_tensor(blk("attn_v"), mt, {kv, H}, plain(hf("self_attn.v_proj.weight"), {kv, H}));
    w.add_tensor(blk("attn_output"), mt, {H, q}, plain(hf("self_attn.o_proj.weight"), {H, q}));
    w.add_tensor(blk("ffn_norm"), GgmlType::F32, {H},
                 plain(hf("post_attention_layernorm.weight"), {H}));
    w.add_tensor(blk("ffn_gate"), mt, {F, H}, plain(hf("mlp.gate_proj.weight"), {F, H}));
    w.add_tensor(blk("ffn_up"), mt, {F, H}, plain(hf("mlp.up_proj.weight"), {F, H}));
    w.add_tensor(blk("ffn_down"), mt, {H, F}, plain(hf("mlp.down_proj.weight"), {H, F}));
  }
  w.add_tensor("output_norm.weight", GgmlType::F32, {H}, plain("model.norm.weight", {H}));
  if (!c.tie_embeddings || st->has("lm_head.weight"))
    w.add_tensor("output.weight", mt, {V, H}, plain("lm_head.weight", {V, H}));
  w.write(out);

  GgufExportReport r;
  r.n_tensors = w.num_tensors();
  r.file_bytes = std::filesystem::file_size(out);
  r.n_vocab = (int)vocab.tokens.size();
  r.vocab_dropped = vocab.dropped;
  r.vocab_model = vocab.model;
  r.vocab_source = vocab.source;
  return r;
}

}  // namespace bwla
