// bwla: 1-bit weight / low-bit activation LLM quantization toolkit.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli_common.h"
#include "core/cluster.h"
#include "core/cpu.h"
#include "core/error.h"

namespace {
// OpenBLAS reads its settings from the environment when the library loads, so
// bwla sets them and re-executes itself once (never overriding the user's):
// OPENBLAS_CORETYPE, because Debian's OpenBLAS mis-detects some AVX-512 CPUs
// and falls back to slow kernels. (Its thread settings do not matter: OpenBLAS
// always runs on one thread, core/blas_par.h.)
void configure_openblas(char** argv) {
  if (std::getenv("BWLA_NO_REEXEC")) return;
  bool changed = false;
  if (!std::getenv("OPENBLAS_CORETYPE")) {
    const auto& f = bwla::cpu_features();
    const char* core = f.avx512f && f.avx512bw ? "SkylakeX" : f.avx2 ? "Haswell" : nullptr;
    if (core) setenv("OPENBLAS_CORETYPE", core, 1), changed = true;
  }
  if (!changed) return;
  setenv("BWLA_NO_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);  // on failure just continue
}
}  // namespace

int run(int argc, char** argv) {
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
  reg(bwla::cli::register_serve);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : cmds)
      if (sub->parsed()) {
        BWLA_CHECK(bwla::cluster_size() == 1 || sub->get_name() == "quantize",
                   "only `bwla quantize` runs across MPI ranks ({} started by mpirun)",
                   bwla::cluster_size());
        return run();
      }
  } catch (const bwla::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    // Carries the paths and the system's reason.
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const nlohmann::json::exception& e) {
    // Loaders name the file themselves; this is the last resort (the JSON
    // pointer of the key is in the message: JSON_DIAGNOSTICS).
    std::fprintf(stderr, "error: JSON value of the wrong type or range: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "error: unknown exception\n");
    return 1;
  }
  return 1;
}

int main(int argc, char** argv) {
  configure_openblas(argv);
  bwla::cluster_init(&argc, &argv);
  const int code = run(argc, argv);
  // An error on one rank must not leave the others blocked in a transfer.
  if (code != 0 && bwla::cluster_size() > 1) bwla::cluster_abort(code);
  bwla::cluster_finalize();
  return code;
}
