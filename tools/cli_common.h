// Shared pieces of the bwla command-line tool.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "core/rss.h"  // peak_rss_bytes, used by several commands
#include "io/json.h"

namespace bwla::cli {

// -t larger than this many threads per core is capped (with a warning).
inline constexpr int kMaxThreadsPerCore = 4;

struct Common {
  int threads = 0;  // 0 = all cores
  bool json = false;
  bool quiet = false;
};

// Adds -t/--threads, --json, -q/--quiet.
void add_common(CLI::App* app, Common& c);
// Applies thread count and log level.
void apply_common(const Common& c);
// Prints one JSON object on stdout.
void print_json(const json& j);

// Each subcommand registers itself: returns the function to run when chosen.
using Runner = std::function<int()>;
Runner register_info(CLI::App& app);
Runner register_generate(CLI::App& app);
Runner register_ppl(CLI::App& app);
Runner register_make_random(CLI::App& app);
Runner register_export_gguf(CLI::App& app);
Runner register_eval(CLI::App& app);
Runner register_quantize(CLI::App& app);
Runner register_table(CLI::App& app);
Runner register_bench(CLI::App& app);
Runner register_inspect(CLI::App& app);
Runner register_pack(CLI::App& app);
Runner register_serve(CLI::App& app);

}  // namespace bwla::cli
