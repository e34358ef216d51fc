#include "model/config.h"

#include "core/error.h"

namespace bwla {

namespace {
const ArchTraits kArchs[] = {
    {"LlamaForCausalLM", Arch::Llama, false, false},
    {"MistralForCausalLM", Arch::Mistral, false, false},
    {"Qwen2ForCausalLM", Arch::Qwen2, true, false},
    {"Qwen3ForCausalLM", Arch::Qwen3, false, true},
};

// Bounds for the size fields: generous for any real checkpoint, small enough
// that products of two of them never overflow the index types used below.
constexpr long long kMaxWidth = 1 << 20;        // hidden, intermediate, head_dim
constexpr long long kMaxCount = 1 << 16;        // layers, heads
constexpr long long kMaxVocab = 1 << 24;
constexpr long long kMaxPositions = 1LL << 28;  // max_position_embeddings, windows

int first_id(const json& j, const char* key, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return -1;
  const json& v = j[key].is_array() ? (j[key].empty() ? json() : j[key][0]) : j[key];
  if (v.is_null()) return -1;
  return (int)json_int_value(v, 0, kMaxVocab, fmt::format("'{}': '{}'", file, key));
}
}  // namespace

const ArchTraits& arch_traits(const std::string& hf_name, const std::string& file) {
  for (auto& a : kArchs)
    if (hf_name == a.hf_name) return a;
  fail("'{}': unsupported architecture '{}' (supported: LlamaForCausalLM, MistralForCausalLM, "
       "Qwen2ForCausalLM, Qwen3ForCausalLM)",
       file, hf_name);
}

const char* arch_hf_name(Arch a) {
  for (auto& t : kArchs)
    if (t.arch == a) return t.hf_name;
  return "?";
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& file) {
  ModelConfig c;
  BWLA_CHECK(j.is_object(), "'{}': config is not a JSON object", file);
  BWLA_CHECK(j.contains("architectures") && j["architectures"].is_array() &&
                 !j["architectures"].empty() && j["architectures"][0].is_string(),
             "'{}': 'architectures' must be a non-empty array of strings", file);
  c.raw = j;
  c.arch_name = j["architectures"][0].get<std::string>();
  const ArchTraits& t = arch_traits(c.arch_name, file);
  c.arch = t.arch;
  c.hidden = (int)json_int_req(j, "hidden_size", 1, kMaxWidth, file);
  c.intermediate = (int)json_int_req(j, "intermediate_size", 1, kMaxWidth, file);
  c.n_layers = (int)json_int_req(j, "num_hidden_layers", 1, kMaxCount, file);
  c.n_heads = (int)json_int_req(j, "num_attention_heads", 1, kMaxCount, file);
  c.n_kv_heads = (int)json_int(j, "num_key_value_heads", c.n_heads, 1, kMaxCount, file);
  c.vocab = (int)json_int_req(j, "vocab_size", 1, kMaxVocab, file);
  c.head_dim = (int)json_int(j, "head_dim", 0, 0, kMaxWidth, file);
  if (c.head_dim <= 0) {
    BWLA_CHECK(c.hidden % c.n_heads == 0,
               "'{}': hidden_size {} not divisible by num_attention_heads {}", file, c.hidden,
               c.n_heads);
    c.head_dim = c.hidden / c.n_heads;
  }
  BWLA_CHECK(c.head_dim % 2 == 0, "'{}': head_dim {} must be even for RoPE", file, c.head_dim);
  BWLA_CHECK((long long)c.n_heads * c.head_dim <= kMaxWidth,
             "'{}': num_attention_heads {} x head_dim {} is implausibly wide", file, c.n_heads,
             c.head_dim);
  BWLA_CHECK(c.n_heads % c.n_kv_heads == 0,
             "'{}': num_attention_heads {} not a multiple of num_key_value_heads {}", file,
             c.n_heads, c.n_kv_heads);
  c.max_pos = (int)json_int(j, "max_position_embeddings", 2048, 1, kMaxPositions, file);
  c.rms_eps = json_number(j, "rms_norm_eps", 1e-6, 0.0, 1.0, file);
  BWLA_CHECK(c.rms_eps > 0, "'{}': 'rms_norm_eps' must be > 0, got {}", file, c.rms_eps);
  c.rope_theta = json_number(j, "rope_theta", 10000.0, 0.0, 1e12, file);
  BWLA_CHECK(c.rope_theta > 0, "'{}': 'rope_theta' must be > 0, got {}", file, c.rope_theta);
  // The MLP is SiLU-gated (SwiGLU) in every supported architecture; another
  // activation would run as SiLU, i.e. a different model.
  const std::string act = json_string(j, "hidden_act", "silu", file);
  BWLA_CHECK(act == "silu" || act == "swish",
             "'{}': hidden_act '{}' is not supported (bwla runs SiLU-gated MLPs: silu)", file, act);
  c.tie_embeddings = json_bool(j, "tie_word_embeddings", false, file);
  c.qkv_bias = json_bool(j, "attention_bias", t.qkv_bias_default, file);
  c.o_bias = c.arch == Arch::Qwen2 ? false : c.qkv_bias;
  c.mlp_bias = json_bool(j, "mlp_bias", false, file);
  c.qk_norm = t.qk_norm;
  c.bos_id = first_id(j, "bos_token_id", file);
  c.eos_id = first_id(j, "eos_token_id", file);
  c.sliding_window = (int)json_int(j, "sliding_window", 0, 0, kMaxPositions, file);
  if (c.arch == Arch::Qwen2 || c.arch == Arch::Qwen3) {
    if (!json_bool(j, "use_sliding_window", false, file)) c.sliding_window = 0;
  }
  c.torch_dtype = json_string(j, "torch_dtype", "", file);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    BWLA_CHECK(j["rope_scaling"].is_object(), "'{}': 'rope_scaling' must be an object or null",
               file);
    const json& r = j["rope_scaling"];
    const std::string where = file + ", rope_scaling";
    std::string type = r.contains("rope_type") ? json_string(r, "rope_type", "", where)
                                               : json_string(r, "type", "", where);
    if (type == "llama3") {
      auto& s = c.rope_scaling;
      s.type = "llama3";
      s.factor = json_number_req(r, "factor", 1e-6, 1e6, where);
      s.low_freq_factor = json_number(r, "low_freq_factor", 1.0, 1e-6, 1e6, where);
      s.high_freq_factor = json_number(r, "high_freq_factor", 4.0, 1e-6, 1e6, where);
      s.original_max_position =
          (int)json_int(r, "original_max_position_embeddings", 8192, 1, kMaxPositions, where);
      BWLA_CHECK(s.high_freq_factor > s.low_freq_factor,
                 "'{}': rope_scaling high_freq_factor {} must exceed low_freq_factor {}", file,
                 s.high_freq_factor, s.low_freq_factor);
    } else if (type != "default" && !type.empty()) {
      fail("'{}': unsupported rope_scaling type '{}' (supported: llama3)", file, type);
    }
  }
  return c;
}

ModelConfig ModelConfig::load(const std::string& dir) {
  std::string file = dir + "/config.json";
  return from_json(load_json_file(file), file);
}

json ModelConfig::to_json() const { return raw; }

int ModelConfig::linear_out(int id) const {
  const int outs[] = {q_dim(), kv_dim(), kv_dim(), hidden, intermediate, intermediate, hidden};
  return outs[id];
}

int ModelConfig::linear_in(int id) const {
  const int ins[] = {hidden, hidden, hidden, q_dim(), hidden, hidden, intermediate};
  return ins[id];
}

long long ModelConfig::n_linear_params() const {
  long long h = hidden, q = q_dim(), kv = kv_dim(), f = intermediate;
  return (long long)n_layers * (h * q + 2 * h * kv + q * h + 3 * h * f);
}

long long ModelConfig::n_params() const {
  long long per_layer_extra = 2LL * hidden + (qk_norm ? 2LL * head_dim : 0) +
                              (qkv_bias ? q_dim() + 2LL * kv_dim() : 0) + (o_bias ? hidden : 0);
  long long emb = (long long)vocab * hidden;
  return n_linear_params() + n_layers * per_layer_extra + emb + (tie_embeddings ? 0 : emb) +
         hidden;
}

}  // namespace bwla
