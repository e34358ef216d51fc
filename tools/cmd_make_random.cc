// bwla make-random --preset P [--arch A] --dtype bf16 --seed S -o DIR
#include <fmt/format.h>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "core/timer.h"
#include "model/random_checkpoint.h"

namespace bwla::cli {

Runner register_make_random(CLI::App& app) {
  auto* sub = app.add_subcommand("make-random", "write a random-weight checkpoint with real shapes");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    RandomCheckpointSpec spec;
    std::string out, dtype = "bf16";
    Common common;
  };
  auto args = std::make_shared<Args>();
  auto& [spec, out, dtype, common] = *args;
  sub->add_option("--preset", spec.preset,
                  "shape preset: " + fmt::format("{}", fmt::join(random_presets(), ", ")))
      ->required();
  sub->add_option("--arch", spec.arch, "override architecture: llama, mistral, qwen2, qwen3");
  sub->add_option("--dtype", dtype, "f32, f16 or bf16");
  sub->add_option("--seed", spec.seed, "random seed");
  sub->add_option("--layers", spec.n_layers, "override the number of layers");
  sub->add_option("--tokenizer", spec.tokenizer_dir, "copy tokenizer files from this directory");
  sub->add_option("-o,--out", out, "output directory")->required();
  add_common(sub, common);
  return [args] {
    auto& [spec, out, dtype, common] = *args;
    apply_common(common);
    spec.dtype = dtype == "f32" ? DType::F32 : dtype == "f16" ? DType::F16 : dtype == "bf16" ? DType::BF16
               : (fail("--dtype must be f32, f16 or bf16, got '{}'", dtype), DType::F32);
    Timer t;
    write_random_checkpoint(spec, out);
    fmt::print(stderr, "wrote {} in {:.1f} s\n", out, t.seconds());
    return 0;
  };
}

}  // namespace bwla::cli
