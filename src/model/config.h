// Model configuration read from a Hugging Face config.json, plus the
// architecture table (what each supported architecture adds to the Llama core).
#pragma once
#include <string>

#include "io/json.h"

namespace bwla {

enum class Arch { Llama, Mistral, Qwen2, Qwen3 };

struct ArchTraits {
  const char* hf_name;  // "LlamaForCausalLM", ...
  Arch arch;
  bool qkv_bias_default;  // Qwen2 has q/k/v bias
  bool qk_norm;           // Qwen3: per-head RMSNorm on q and k before RoPE
};
// Throws naming the file for unsupported architectures.
const ArchTraits& arch_traits(const std::string& hf_name, const std::string& file);
const char* arch_hf_name(Arch a);

struct RopeScaling {
  std::string type;  // "" (none) or "llama3"
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int original_max_position = 8192;
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string arch_name;
  int hidden = 0, intermediate = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int vocab = 0, max_pos = 0;
  double rms_eps = 1e-5, rope_theta = 10000.0;
  bool tie_embeddings = false;
  bool qkv_bias = false, o_bias = false, mlp_bias = false, qk_norm = false;
  RopeScaling rope_scaling;
  int bos_id = -1, eos_id = -1;
  int sliding_window = 0;  // Mistral; 0 = none
  std::string torch_dtype;
  json raw;  // the whole config.json (quantization_config etc.)

  int q_dim() const { return n_heads * head_dim; }
  // Output / input width of decoder linear id (LinearId order: q, k, v, o, gate, up, down).
  int linear_out(int id) const;
  int linear_in(int id) const;
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Parameter count of the decoder (embeddings and head included).
  long long n_params() const;
  // Parameters in the seven decoder linears (what gets binarized).
  long long n_linear_params() const;

  static ModelConfig from_json(const json& j, const std::string& file);
  static ModelConfig load(const std::string& dir);
  json to_json() const;
};

}  // namespace bwla
