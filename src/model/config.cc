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

template <typename T>
T get_or(const json& j, const char* key, T def, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return def;
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    fail("'{}': key '{}' has the wrong type ({})", file, key, j[key].dump());
  }
}
template <typename T>
T get_req(const json& j, const char* key, const std::string& file) {
  BWLA_CHECK(j.contains(key) && !j[key].is_null(), "'{}': missing required key '{}'", file, key);
  return get_or<T>(j, key, T{}, file);
}
int first_id(const json& j, const char* key, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return -1;
  if (j[key].is_array()) return j[key].empty() ? -1 : j[key][0].get<int>();
  return get_or<int>(j, key, -1, file);
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
  c.raw = j;
  BWLA_CHECK(j.is_object(), "'{}': config is not a JSON object", file);
  BWLA_CHECK(j.contains("architectures") && j["architectures"].is_array() &&
                 !j["architectures"].empty(),
             "'{}': missing 'architectures'", file);
  c.arch_name = j["architectures"][0].get<std::string>();
  const ArchTraits& t = arch_traits(c.arch_name, file);
  c.arch = t.arch;
  c.hidden = get_req<int>(j, "hidden_size", file);
  c.intermediate = get_req<int>(j, "intermediate_size", file);
  c.n_layers = get_req<int>(j, "num_hidden_layers", file);
  c.n_heads = get_req<int>(j, "num_attention_heads", file);
  c.n_kv_heads = get_or<int>(j, "num_key_value_heads", c.n_heads, file);
  c.vocab = get_req<int>(j, "vocab_size", file);
  BWLA_CHECK(c.hidden > 0 && c.intermediate > 0 && c.n_layers > 0 && c.n_heads > 0 &&
                 c.n_kv_heads > 0 && c.vocab > 0,
             "'{}': sizes must be positive (hidden {}, intermediate {}, layers {}, heads {}, kv "
             "heads {}, vocab {})",
             file, c.hidden, c.intermediate, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab);
  c.head_dim = get_or<int>(j, "head_dim", 0, file);
  if (c.head_dim <= 0) {
    BWLA_CHECK(c.hidden % c.n_heads == 0,
               "'{}': hidden_size {} not divisible by num_attention_heads {}", file, c.hidden,
               c.n_heads);
    c.head_dim = c.hidden / c.n_heads;
  }
  BWLA_CHECK(c.head_dim % 2 == 0, "'{}': head_dim {} must be even for RoPE", file, c.head_dim);
  BWLA_CHECK(c.n_heads % c.n_kv_heads == 0,
             "'{}': num_attention_heads {} not a multiple of num_key_value_heads {}", file,
             c.n_heads, c.n_kv_heads);
  c.max_pos = get_or<int>(j, "max_position_embeddings", 2048, file);
  c.rms_eps = get_or<double>(j, "rms_norm_eps", 1e-6, file);
  c.rope_theta = get_or<double>(j, "rope_theta", 10000.0, file);
  c.tie_embeddings = get_or<bool>(j, "tie_word_embeddings", false, file);
  c.qkv_bias = get_or<bool>(j, "attention_bias", t.qkv_bias_default, file);
  c.o_bias = c.arch == Arch::Qwen2 ? false : c.qkv_bias;
  c.mlp_bias = get_or<bool>(j, "mlp_bias", false, file);
  c.qk_norm = t.qk_norm;
  c.bos_id = first_id(j, "bos_token_id", file);
  c.eos_id = first_id(j, "eos_token_id", file);
  c.sliding_window = get_or<int>(j, "sliding_window", 0, file);
  if (c.arch == Arch::Qwen2 || c.arch == Arch::Qwen3) {
    if (!get_or<bool>(j, "use_sliding_window", false, file)) c.sliding_window = 0;
  }
  c.torch_dtype = get_or<std::string>(j, "torch_dtype", "", file);
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const json& r = j["rope_scaling"];
    std::string type = r.contains("rope_type") ? r["rope_type"].get<std::string>()
                                               : get_or<std::string>(r, "type", "", file);
    if (type == "llama3") {
      c.rope_scaling.type = "llama3";
      c.rope_scaling.factor = get_req<double>(r, "factor", file);
      c.rope_scaling.low_freq_factor = get_or<double>(r, "low_freq_factor", 1.0, file);
      c.rope_scaling.high_freq_factor = get_or<double>(r, "high_freq_factor", 4.0, file);
      c.rope_scaling.original_max_position =
          get_or<int>(r, "original_max_position_embeddings", 8192, file);
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
