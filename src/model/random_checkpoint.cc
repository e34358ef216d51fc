#include "model/random_checkpoint.h"

#include <sys/stat.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "io/output_path.h"
#include "model/config.h"
#include "model/linear.h"
#include "model/model.h"

namespace bwla {

namespace {
struct Preset {
  const char* name;
  const char* arch;
  int hidden, inter, layers, heads, kv_heads, head_dim, vocab, max_pos;
  bool tie;
  double theta;
};
const Preset kPresets[] = {
    {"smollm2-135m", "llama", 576, 1536, 30, 9, 3, 64, 49152, 8192, true, 100000.0},
    {"qwen3-0.6b", "qwen3", 1024, 3072, 28, 16, 8, 128, 151936, 40960, true, 1000000.0},
    {"tinyllama-1.1b", "llama", 2048, 5632, 22, 32, 4, 64, 32000, 2048, false, 10000.0},
    {"llama2-7b", "llama", 4096, 11008, 32, 32, 32, 128, 32000, 4096, false, 10000.0},
    {"tiny-llama", "llama", 64, 160, 2, 4, 2, 16, 512, 256, false, 10000.0},
    {"tiny-mistral", "mistral", 64, 160, 2, 4, 2, 16, 512, 256, false, 10000.0},
    {"tiny-qwen2", "qwen2", 64, 160, 2, 4, 2, 16, 512, 256, true, 1000000.0},
    {"tiny-qwen3", "qwen3", 64, 160, 2, 4, 2, 32, 512, 256, true, 1000000.0},
};

const Preset& find_preset(const std::string& name) {
  for (auto& p : kPresets)
    if (name == p.name) return p;
  std::vector<std::string> names;
  for (auto& p : kPresets) names.push_back(p.name);
  fail("unknown preset '{}' (available: {})", name, fmt::join(names, ", "));
}

std::string arch_class(const std::string& a) {
  if (a == "llama") return "LlamaForCausalLM";
  if (a == "mistral") return "MistralForCausalLM";
  if (a == "qwen2") return "Qwen2ForCausalLM";
  if (a == "qwen3") return "Qwen3ForCausalLM";
  fail("unknown --arch '{}' (expected llama, mistral, qwen2 or qwen3)", a);
}
}  // namespace

std::vector<std::string> random_presets() {
  std::vector<std::string> v;
  for (auto& p : kPresets) v.push_back(p.name);
  return v;
}

json random_config(const RandomCheckpointSpec& s) {
  const Preset& p = find_preset(s.preset);
  std::string arch = s.arch.empty() ? p.arch : s.arch;
  json j;
  j["architectures"] = {arch_class(arch)};
  j["model_type"] = arch;
  j["hidden_size"] = p.hidden;
  j["intermediate_size"] = p.inter;
  j["num_hidden_layers"] = s.n_layers > 0 ? s.n_layers : p.layers;
  j["num_attention_heads"] = p.heads;
  j["num_key_value_heads"] = p.kv_heads;
  j["head_dim"] = p.head_dim;
  j["vocab_size"] = p.vocab;
  j["max_position_embeddings"] = p.max_pos;
  j["rms_norm_eps"] = 1e-6;
  j["rope_theta"] = p.theta;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = p.tie;
  j["attention_bias"] = arch == "qwen2";
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  j["torch_dtype"] = s.dtype == DType::F32 ? "float32" : s.dtype == DType::F16 ? "float16" : "bfloat16";
  j["rope_scaling"] = nullptr;
  j["initializer_range"] = 0.02;
  if (arch == "mistral") j["sliding_window"] = 4096;
  return j;
}

void write_random_checkpoint(const RandomCheckpointSpec& s, const std::string& out_dir) {
  json j = random_config(s);
  ModelConfig c = ModelConfig::from_json(j, out_dir + "/config.json");
  StagedDir out(out_dir, {s.tokenizer_dir}, "-o", "make-random");
  const std::string cfg_file = out.file("config.json");
  SafeTensorsWriter w;
  uint64_t tensor_seed = s.seed * 1000003ull + 17;
  auto add_random = [&](const std::string& name, std::vector<int64_t> shape, double stdv,
                        double mean) {
    size_t n = 1;
    for (auto d : shape) n *= (size_t)d;
    std::vector<float> v(n);
    Rng rng(tensor_seed++);
    for (auto& x : v) x = (float)(mean + stdv * rng.normal());
    w.add_from_f32(name, s.dtype, shape, v.data());
  };
  const double sd = 0.02;
  add_random("model.embed_tokens.weight", {c.vocab, c.hidden}, sd, 0.0);
  for (int l = 0; l < c.n_layers; ++l) {
    add_random(layer_tensor_name(l, "input_layernorm.weight"), {c.hidden}, 0.05, 1.0);
    add_random(layer_tensor_name(l, "post_attention_layernorm.weight"), {c.hidden}, 0.05, 1.0);
    if (c.qk_norm) {
      add_random(layer_tensor_name(l, "self_attn.q_norm.weight"), {c.head_dim}, 0.05, 1.0);
      add_random(layer_tensor_name(l, "self_attn.k_norm.weight"), {c.head_dim}, 0.05, 1.0);
    }
    for (int id = 0; id < kNumLinears; ++id) {
      std::string p = linear_tensor_prefix(l, id);
      // std ~ 1/sqrt(in) keeps activations O(1) through depth.
      add_random(p + ".weight", {c.linear_out(id), c.linear_in(id)}, 1.0 / std::sqrt((double)c.linear_in(id)), 0.0);
      if (id <= kV && c.qkv_bias) add_random(p + ".bias", {c.linear_out(id)}, sd, 0.0);
    }
    log_info("make-random: layer {}/{} generated", l + 1, c.n_layers);
  }
  add_random("model.norm.weight", {c.hidden}, 0.05, 1.0);
  if (!c.tie_embeddings) add_random("lm_head.weight", {c.vocab, c.hidden}, sd, 0.0);
  w.set_metadata("format", "pt");
  w.write(out.file("model.safetensors"));
  write_text_file_atomic(cfg_file, j.dump(2));
  if (!s.tokenizer_dir.empty()) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      std::string src = s.tokenizer_dir + "/" + f;
      if (std::filesystem::exists(src))
        std::filesystem::copy_file(src, out.file(f),
                                   std::filesystem::copy_options::overwrite_existing);
    }
  }
  out.commit();
}

}  // namespace bwla
