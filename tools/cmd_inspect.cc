// bwla inspect DIR --layer L --linear NAME [--plots OUTDIR]
#include <fmt/format.h>

#include <cstdio>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "io/output_path.h"
#include "diagnostics/inspect.h"
#include "tokenizer/tokenizer.h"
#include "pipeline/calibration.h"

namespace bwla::cli {

Runner register_inspect(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "inspect", "one linear's weight/activation statistics before/after OKT and PSP (+ PNG plots)");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    std::string dir, plots, prefix, mstep = "procrustes";
    InspectOptions o;
    CalibOptions calib;
    Common common;
    CLI::Option *rank_opt, *ratio_opt;
  };
  auto args = std::make_shared<Args>();
  auto& [dir, plots, prefix, mstep, o, calib, common, rank_opt, ratio_opt] = *args;
  calib.n_segments = 8;
  calib.seq_len = 128;
  sub->add_option("model", dir, "model directory (Hugging Face layout or bwla quantized)")->required();
  sub->add_option("--layer", o.layer, "decoder layer index")->required();
  sub->add_option("--linear", o.linear,
                  fmt::format("linear: {}", fmt::join(inspect_linear_names(), ", ")))
      ->required();
  sub->add_option("--plots", plots, "write PNG plots (PLplot) into this directory");
  sub->add_option("--prefix", prefix, "plot file name prefix (default layer<L>_<linear>_)");
  sub->add_option("--okt-iters", o.okt.iters, "OKT EM iterations");
  sub->add_option("--kappa", o.okt.kappa, "OKT mixture width σ = κ·c");
  sub->add_option("--mstep", mstep, "OKT M-step: procrustes or cayley");
  sub->add_flag("--hadamard-init", o.okt.hadamard_init, "start OKT from Hadamard");
  rank_opt = sub->add_option("--rank", o.psp_rank, "fixed PSP rank (overrides --rank-ratio)");
  ratio_opt = sub->add_option("--rank-ratio", o.rank_ratio, "PSP rank as a fraction of min(out, in), default 0.005");
  sub->add_option("--psp-iters", o.psp_iters, "PSP alternations");
  sub->add_option("--top-sv", o.top_sv, "singular values listed in the report");
  sub->add_option("--calib", calib.source, "calibration: c4, wikitext or a file");
  sub->add_option("--nsamples", calib.n_segments, "calibration segments (default 8)");
  sub->add_option("--seqlen", calib.seq_len, "calibration segment length (default 128)");
  sub->add_option("--shared", calib.shared_dir, "directory holding data/ (default ../shared)");
  sub->add_option("--seed", calib.seed, "seed (calibration sampling, OKT/PSP init)");
  add_common(sub, common);
  return [args] {
    auto& [dir, plots, prefix, mstep, o, calib, common, rank_opt, ratio_opt] = *args;
    apply_common(common);
    BWLA_CHECK(mstep == "procrustes" || mstep == "cayley", "--mstep must be procrustes or cayley");
    o.okt.mstep = mstep == "cayley" ? OktOptions::MStep::Cayley : OktOptions::MStep::Procrustes;
    BWLA_CHECK(!(rank_opt->count() && ratio_opt->count()), "give either --rank or --rank-ratio, not both");
    BWLA_CHECK(o.psp_rank >= 0 && o.rank_ratio > 0, "--rank must be >= 0 and --rank-ratio > 0");
    bool known = false;
    for (auto& n : inspect_linear_names()) known |= n == o.linear;
    BWLA_CHECK(known, "unknown --linear '{}'; valid names: {}", o.linear,
               fmt::join(inspect_linear_names(), ", "));
    if (!plots.empty() && !inspect_plots_available())
      write_inspect_plots({}, plots, prefix);  // throws the explanation
    if (!plots.empty()) check_output_dir(plots, {dir}, "--plots");
    o.okt.seed = calib.seed;
    auto tok = Tokenizer::load_dir(dir);
    auto segs = sample_calibration(*tok, calib);
    InspectData d = inspect_linear(dir, o, segs);
    d.report["calibration"]["source"] = calib.source;
    if (!plots.empty()) {
      std::string pre = prefix.empty() ? fmt::format("layer{}_{}_", o.layer, o.linear) : prefix;
      d.report["plots"] = write_inspect_plots(d, plots, pre);
    }
    if (common.json)
      print_json(d.report);
    else
      fmt::print("{}", inspect_text(d.report));
    return 0;
  };
}

}  // namespace bwla::cli
