// bwla quantize DIR --method M --wbits 1 --abits 6 [...] -o OUT
#include <fmt/format.h>

#include <memory>

#include "cli_common.h"
#include "core/cluster.h"
#include "core/error.h"
#include "core/log.h"
#include "eval/perplexity.h"
#include "format/model_loader.h"
#include "io/mmap.h"
#include "model/config.h"
#include "pipeline/quantize.h"
#include "tokenizer/tokenizer.h"

namespace bwla::cli {

Runner register_quantize(CLI::App& app) {
  auto* sub = app.add_subcommand("quantize", "post-training quantization (BWLA and baselines)");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    std::string dir, out, mstep = "procrustes", prox = "truncated", ppl_data, keep_acts = "auto";
    QuantizeOptions o;
    bool no_fp_ppl = false;
    bool no_okt = false, no_psp = false, no_clip = false, no_act_quant = false, no_resume = false, no_groups = false, groups = false;
    int ppl_ctx = 0;
    long ppl_windows = 0;
    Common common;
    CLI::Option *abits_opt, *rank_opt, *ratio_opt, *seqlen_opt, *refine_opt, *block_opt;
  };
  auto args = std::make_shared<Args>();
  auto& [dir, out, mstep, prox, ppl_data, keep_acts, o, no_fp_ppl, no_okt, no_psp, no_clip, no_act_quant, no_resume, no_groups, groups, ppl_ctx, ppl_windows, common, abits_opt, rank_opt, ratio_opt, seqlen_opt, refine_opt, block_opt] = *args;
  sub->add_option("model", dir, "model directory (Hugging Face layout)")->required();
  sub->add_option("-o,--out", out, "output directory")->required();
  sub->add_option("--method", o.method,
                  fmt::format("method: {}", fmt::join(quantize_methods(), ", ")));
  sub->add_option("--wbits", o.wbits, "weight bits (1 for binarization)");
  abits_opt = sub->add_option("--abits", o.abits,
                              "activation bits: 4, 6, 8 or 16 (off); default 6 for bwla (W1A6), "
                              "16 for the baselines");
  sub->add_option("--transform", o.transform, "input transform: auto, none, hadamard, okt");
  sub->add_flag("--no-okt", no_okt, "bwla: no OKT rotation");
  sub->add_flag("--no-psp", no_psp, "bwla: no PSP low-rank branch");
  sub->add_flag("--no-act-quant", no_act_quant, "keep activations in fp32 (same as --abits 16)");
  sub->add_option("--binarizer", o.binarizer, "bwla: weight quantizer on rotated weights");
  rank_opt = sub->add_option("--rank", o.psp_opt.rank, "bwla: fixed PSP rank (overrides --rank-ratio)");
  ratio_opt = sub->add_option("--rank-ratio", o.rank_ratio, "bwla: PSP rank as a fraction of min(out, in), default 0.005");
  sub->add_option("--psp-iters", o.psp_opt.iters, "bwla: PSP alternations");
  sub->add_option("--psp-full-iters", o.psp_full_iters,
                  "bwla: last PSP iterations that run --binarizer (earlier ones use a sign*alpha "
                  "surrogate); -1 = all, 0 = auto (default: 1 with column groups, all without)");
  sub->add_option("--prox", prox, "bwla: PSP proximal step: truncated or soft");
  sub->add_option("--okt-iters", o.okt.iters, "bwla: OKT EM iterations");
  sub->add_option("--kappa", o.okt.kappa, "bwla: OKT mixture width σ = κ·c");
  sub->add_option("--mstep", mstep, "bwla: OKT M-step: procrustes (closed form, default) or cayley (gradient step)");
  sub->add_flag("--hadamard-init", o.okt.hadamard_init, "bwla: start OKT from Hadamard");
  sub->add_option("--act-aware", o.okt.act_weight, "bwla: weight of OKT's activation term (0 = off)");
  sub->add_option("--group-size", o.wq.group_size, "rtn/gptq n-bit group size (0 = per row)");
  block_opt = sub->add_option("--block-size", o.wq.block_size,
                              "GPTQ/BiLLM/ARB sweep block; one-plane arb*: also the columns per "
                              "α, μ (default 128; bwla one-plane: whole rows)");
  auto* ng = sub->add_flag("--no-groups", no_groups,
                           "arb*: no column-group bitmaps (1 bit plane per weight; bwla's default)");
  sub->add_flag("--groups", groups,
                "bwla: BiLLM column-group bitmaps (about 3 honest bits per weight; packs as bit "
                "planes) instead of the default one sign plane")
      ->excludes(ng);
  sub->add_option("--arb-iters", o.wq.arb_iters, "ARB refinement iterations");
  refine_opt = sub->add_option("--sign-refine", o.wq.sign_refine,
                               "one-plane layouts: rounds of output-aware sign flips + scale "
                               "refit (0 = off; default 2 for bwla one-plane)")
                   ->check(CLI::Range(0, 100));
  sub->add_option("--damp", o.wq.damp, "GPTQ damping (fraction of mean diag)");
  sub->add_flag("--no-clip-search", no_clip, "activation clip ratio fixed at 1");
  sub->add_option("--calib", o.calib.source, "calibration: c4, wikitext, a file, or random-tokens (timing runs without a tokenizer)");
  sub->add_option("--nsamples", o.calib.n_segments, "calibration segments");
  seqlen_opt = sub->add_option("--seqlen", o.calib.seq_len,
                               "calibration segment length (default 512, or the model's "
                               "max_position_embeddings when shorter)");
  sub->add_option("--shared", o.calib.shared_dir, "directory holding data/ (default ../shared)");
  sub->add_option("--seed", o.seed, "seed (calibration sampling, transforms)");
  sub->add_flag("--no-resume", no_resume, "ignore per-layer results of an interrupted run");
  sub->add_option("--linear-jobs", o.linear_jobs,
                  "linears of a layer quantized side by side, one thread each (1 = one at a time; "
                  "0 = auto: --threads while a layer's linears have at most 16M weights, else 1, "
                  "since side by side only adds memory on large ones)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--keep-activations", keep_acts,
                  "keep the o_proj / down_proj inputs of all calibration rows (yes), or recompute "
                  "them per chunk (no: less memory, one more forward per layer, same output); "
                  "auto = yes up to 2 GiB")
      ->check(CLI::IsMember({"auto", "yes", "no"}));
  sub->add_option("--stop-after", o.stop_after, "quantize N layers, keep OUT.partial and exit (resume later)");
  sub->add_option("--ppl-data", ppl_data, "after quantizing, print FP vs quantized PPL on this file");
  sub->add_option("--ppl-ctx", ppl_ctx, "PPL window (default: calibration length)");
  sub->add_option("--ppl-windows", ppl_windows, "PPL: at most this many windows (0 = all)");
  sub->add_flag("--ppl-no-fp", no_fp_ppl, "PPL: skip the FP32 reference (grids compute it once)");
  add_common(sub, common);
  return [args] {
    auto& [dir, out, mstep, prox, ppl_data, keep_acts, o, no_fp_ppl, no_okt, no_psp, no_clip, no_act_quant, no_resume, no_groups, groups, ppl_ctx, ppl_windows, common, abits_opt, rank_opt, ratio_opt, seqlen_opt, refine_opt, block_opt] = *args;
    apply_common(common);
    o.keep_activations = keep_acts == "yes"  ? KeepActivations::Yes
                         : keep_acts == "no" ? KeepActivations::No
                                             : KeepActivations::Auto;
    if (o.is_bwla() && !abits_opt->count() && !no_act_quant) o.abits = 6;
    if (no_act_quant) {
      BWLA_CHECK(o.abits == 16 || !abits_opt->count(), "--no-act-quant contradicts --abits {}", o.abits);
      o.abits = 16;
    }
    BWLA_CHECK(!(no_okt && (o.transform == "okt")), "--no-okt contradicts --transform okt");
    if (no_okt && o.transform == "auto") o.transform = "none";
    BWLA_CHECK(mstep == "procrustes" || mstep == "cayley", "--mstep must be procrustes or cayley");
    o.okt.mstep = mstep == "cayley" ? OktOptions::MStep::Cayley : OktOptions::MStep::Procrustes;
    BWLA_CHECK(prox == "truncated" || prox == "soft", "--prox must be truncated or soft");
    o.psp_opt.prox = prox == "soft" ? PspOptions::Prox::SoftThreshold : PspOptions::Prox::Truncated;
    BWLA_CHECK(!(no_psp && !o.is_bwla()), "--no-psp only applies to --method bwla");
    // bwla's default is the one-sign-plane layout that `pack` stores at ~1.1
    // bits (docs/RESULTS.md, "The default one-plane layout"): whole-row α, μ,
    // sign refinement on; --groups selects the column-group layout. The other
    // arb* methods keep the papers' column groups unless --no-groups.
    BWLA_CHECK(!groups || o.is_bwla(),
               "--groups applies to --method bwla (arb* methods use column groups by default)");
    o.wq.groups = o.is_bwla() ? groups : !no_groups;
    // PSP at rank 0.005·width in both layouts: in the one-plane layout it
    // lowered W1A6 KLD by 3-5 % on all three real models (docs/RESULTS.md
    // ablation) for ~0.06 bits/weight at the TinyLlama shape with int8 factors.
    const bool rank_given = rank_opt->count() || ratio_opt->count();
    o.psp = o.is_bwla() && !no_psp;
    BWLA_CHECK(!(no_psp && rank_given), "--no-psp contradicts --rank / --rank-ratio");
    if (o.is_bwla() && !o.wq.groups) {
      const bool refinable = weight_method_sign_refinable(o.binarizer, o.wbits, false);
      if (!refine_opt->count() && refinable) o.wq.sign_refine = kBwlaOnePlaneSignRefine;
      if (!block_opt->count()) o.wq.block_size = kBwlaOnePlaneBlock;
    }
    BWLA_CHECK(!(rank_opt->count() && ratio_opt->count()), "give either --rank or --rank-ratio, not both");
    if (rank_opt->count()) o.rank_ratio = 0;
    o.clip_search = !no_clip;
    o.resume = !no_resume;
    o.calib.seed = o.seed;
    // Defaults follow the model: a context shorter than the default length
    // calibrates (and scores) on full-context segments instead of failing.
    const ModelConfig mc = ModelConfig::load(dir);
    if (!seqlen_opt->count() && o.calib.seq_len > mc.max_pos) {
      log_info("quantize: --seqlen {} (the model's max_position_embeddings)", mc.max_pos);
      o.calib.seq_len = mc.max_pos;
    }
    // The PPL step runs after the whole quantization: its options are checked now.
    BWLA_CHECK(ppl_ctx >= 0, "--ppl-ctx must be >= 0 (0 = the calibration length), got {}", ppl_ctx);
    BWLA_CHECK(ppl_windows >= 0, "--ppl-windows must be >= 0, got {}", ppl_windows);
    if (!ppl_data.empty()) {
      BWLA_CHECK(file_exists(ppl_data), "--ppl-data '{}': file not found", ppl_data);
      const int ctx = ppl_ctx > 0 ? ppl_ctx : o.calib.seq_len;
      BWLA_CHECK(ctx >= 2 && ctx <= mc.max_pos,
                 "--ppl-ctx {}{} must be in [2, {}] (the model's max_position_embeddings)", ctx,
                 ppl_ctx > 0 ? "" : " (default: --seqlen)", mc.max_pos);
    }
    // Under mpirun rank 0 speaks for the run (logs, output, the PPL step).
    if (cluster_rank() != 0) set_log_level(LogLevel::Quiet);
    QuantizeResult r = quantize_model(dir, o, out);
    if (cluster_rank() != 0) return 0;
    if (!r.complete) {
      fmt::print(stderr, "stopped after {} layers; run the same command again to continue\n", o.stop_after);
      return 0;
    }
    json j = r.report;
    j.erase("layers");
    if (!ppl_data.empty()) {
      std::string text = read_text_file(ppl_data);
      auto tok = Tokenizer::load_dir(dir);
      auto ids = tok->encode(text, true);
      PplOptions po;
      po.ctx = ppl_ctx > 0 ? ppl_ctx : o.calib.seq_len;
      po.max_windows = ppl_windows;
      po.progress = !common.quiet;
      PplResult a;
      if (!no_fp_ppl) {
        auto fp = load_model(dir, /*prepack_dense=*/true);
        a = perplexity(*fp, ids, po);
      }
      auto qm = load_model(out);
      PplResult b = perplexity(*qm, ids, po);
      if (!no_fp_ppl) j["ppl_fp32"] = a.ppl;
      j["ppl_quantized"] = b.ppl;
      j["ppl_ctx"] = po.ctx;
      j["ppl_windows"] = b.windows;
      if (!common.json)
        fmt::print("{}: FP32 PPL {:.3f} -> {} W{}A{} PPL {:.3f} ({} windows x {} tokens)\n",
                   ppl_data, a.ppl, o.method, o.wbits, o.abits, b.ppl, b.windows, po.ctx);
    }
    if (common.json) {
      print_json(j);
    } else {
      fmt::print("quantized {} with {} W{}A{} in {:.1f} s: {:.3f} bits per decoder weight -> {}\n",
                 dir, o.method, o.wbits, o.abits, r.seconds, r.bits_per_weight, out);
    }
    return 0;
  };
}

}  // namespace bwla::cli
