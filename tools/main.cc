// bwla: 1-bit weight / low-bit activation LLM quantization toolkit.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "cli_common.h"
#include "core/cpu.h"
#include "core/error.h"

namespace {
// Debian's OpenBLAS mis-detects some AVX-512 CPUs and falls back to slow
// kernels; it reads OPENBLAS_CORETYPE when the library loads, so set it and
// re-execute once (only if the user has not set it).
void fix_openblas_coretype(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("BWLA_NO_REEXEC")) return;
  const auto& f = bwla::cpu_features();
  const char* core = f.avx512f && f.avx512bw ? "SkylakeX" : f.avx2 ? "Haswell" : nullptr;
  if (!core) return;
  setenv("OPENBLAS_CORETYPE", core, 1);
  setenv("BWLA_NO_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);  // on failure just continue
}
}  // namespace

int main(int argc, char** argv) {
  fix_openblas_coretype(argv);
  CLI::App app{"bwla: 1-bit weights, low-bit activations for LLMs on CPU"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, bwla::cli::Runner>> cmds;
  auto reg = [&](bwla::cli::Runner (*f)(CLI::App&)) {
    size_t before = app.get_subcommands({}).size();
    auto r = f(app);
    auto subs = app.get_subcommands({});
    if (subs.size() > before) cmds.push_back({subs.back(), r});
  };
  reg(bwla::cli::register_info);
  reg(bwla::cli::register_generate);
  reg(bwla::cli::register_ppl);
  reg(bwla::cli::register_make_random);
  reg(bwla::cli::register_export_gguf);
  reg(bwla::cli::register_eval);
  reg(bwla::cli::register_quantize);
  reg(bwla::cli::register_bench);
  reg(bwla::cli::register_inspect);
  reg(bwla::cli::register_pack);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : cmds)
      if (sub->parsed()) return run();
  } catch (const bwla::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  }
  return 1;
}
