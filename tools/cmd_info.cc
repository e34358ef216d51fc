// bwla info DIR: architecture, shapes, parameters, dtype, tokenizer kind.
#include <fmt/format.h>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

namespace bwla::cli {

Runner register_info(CLI::App& app) {
  auto* sub = app.add_subcommand("info", "print a model's architecture, shapes and sizes");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    std::string dir;
    Common common;
  };
  auto args = std::make_shared<Args>();
  auto& [dir, common] = *args;
  sub->add_option("model", dir, "model directory (Hugging Face layout)")->required();
  add_common(sub, common);
  return [args] {
    auto& [dir, common] = *args;
    apply_common(common);
    ModelConfig c = ModelConfig::load(dir);
    TensorStore st(dir);
    std::string tok_kind = "none";
    int tok_vocab = 0;
    try {
      auto tok = Tokenizer::load_dir(dir);
      tok_kind = tok->kind();
      tok_vocab = tok->vocab_size();
    } catch (const Error& e) {
      tok_kind = std::string("unavailable (") + e.what() + ")";
    }
    json j = {{"architecture", c.arch_name},
              {"hidden_size", c.hidden},
              {"intermediate_size", c.intermediate},
              {"num_layers", c.n_layers},
              {"num_heads", c.n_heads},
              {"num_kv_heads", c.n_kv_heads},
              {"head_dim", c.head_dim},
              {"vocab_size", c.vocab},
              {"max_position_embeddings", c.max_pos},
              {"tie_word_embeddings", c.tie_embeddings},
              {"rope_theta", c.rope_theta},
              {"rope_scaling", c.rope_scaling.type.empty() ? "none" : c.rope_scaling.type},
              {"qkv_bias", c.qkv_bias},
              {"qk_norm", c.qk_norm},
              {"parameters", c.n_params()},
              {"linear_parameters", c.n_linear_params()},
              {"dtype", st.main_dtype()},
              {"tensor_bytes", st.total_bytes()},
              {"num_tensors", st.names().size()},
              {"tokenizer", tok_kind},
              {"tokenizer_vocab", tok_vocab},
              {"quantized", c.raw.contains("quantization_config")}};
    if (common.json) {
      print_json(j);
    } else {
      fmt::print("architecture   {}\n", c.arch_name);
      fmt::print("layers         {}  hidden {}  intermediate {}\n", c.n_layers, c.hidden,
                 c.intermediate);
      fmt::print("heads          {} (kv {}), head_dim {}\n", c.n_heads, c.n_kv_heads, c.head_dim);
      fmt::print("vocab          {}  max positions {}  tied embeddings {}\n", c.vocab, c.max_pos,
                 c.tie_embeddings ? "yes" : "no");
      fmt::print("rope           theta {} scaling {}\n", c.rope_theta,
                 c.rope_scaling.type.empty() ? "none" : c.rope_scaling.type);
      fmt::print("extras         qkv bias {}  q/k norm {}\n", c.qkv_bias ? "yes" : "no",
                 c.qk_norm ? "yes" : "no");
      fmt::print("parameters     {} ({} in decoder linears)\n", c.n_params(), c.n_linear_params());
      fmt::print("dtype          {}  ({} tensors, {:.2f} MiB)\n", st.main_dtype(), st.names().size(),
                 st.total_bytes() / 1048576.0);
      fmt::print("tokenizer      {}{}\n", tok_kind,
                 tok_vocab ? fmt::format(" (vocab {})", tok_vocab) : "");
      if (c.raw.contains("quantization_config"))
        fmt::print("quantization   {}\n", c.raw["quantization_config"].dump());
    }
    return 0;
  };
}

}  // namespace bwla::cli
