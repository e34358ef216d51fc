// bwla export-gguf DIR -o FILE.gguf [--dtype f16|f32] [--tokenizer-model FILE]:
// a Llama-architecture checkpoint as GGUF (general.architecture=llama), so
// llama.cpp can run the same weights for side-by-side comparisons.
#include <fmt/format.h>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "core/timer.h"
#include "export/gguf_export.h"

namespace bwla::cli {

Runner register_export_gguf(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "export-gguf", "write a Llama-architecture checkpoint as GGUF (llama.cpp's format)");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    std::string dir, out, dtype = "f16";
    GgufExportOptions opt;
    Common common;
  };
  auto args = std::make_shared<Args>();
  auto& [dir, out, dtype, opt, common] = *args;
  sub->add_option("model", dir, "model directory (Hugging Face layout)")->required();
  sub->add_option("-o,--output", out, "output .gguf file")->required();
  sub->add_option("--dtype", dtype, "matrix dtype: f16 or f32 (norms are always f32)");
  sub->add_option("--tokenizer-model", opt.tokenizer_model,
                  "SentencePiece tokenizer.model to use instead of the directory's tokenizer");
  add_common(sub, common);
  return [args] {
    auto& [dir, out, dtype, opt, common] = *args;
    apply_common(common);
    opt.type = parse_ggml_type(dtype, "--dtype");
    Timer t;
    GgufExportReport r = export_gguf(dir, out, opt);
    json j = {{"output", out},
              {"dtype", ggml_type_name(opt.type)},
              {"tensors", r.n_tensors},
              {"file_bytes", r.file_bytes},
              {"vocab", r.n_vocab},
              {"vocab_dropped_added_tokens", r.vocab_dropped},
              {"tokenizer_model", r.vocab_model},
              {"tokenizer_source", r.vocab_source},
              {"seconds", t.seconds()}};
    if (r.vocab_dropped > 0)
      fmt::print(stderr, "note: dropped {} added token(s) with ids past vocab_size {}\n",
                 r.vocab_dropped, r.n_vocab);
    if (common.json) {
      print_json(j);
    } else {
      fmt::print("wrote {} ({} tensors, {:.1f} MiB, {}; vocab {} '{}' from {}) in {:.1f} s\n", out,
                 r.n_tensors, r.file_bytes / 1048576.0, ggml_type_name(opt.type), r.n_vocab,
                 r.vocab_model, r.vocab_source, t.seconds());
    }
    return 0;
  };
}

}  // namespace bwla::cli
