// bwla ppl DIR --data FILE [--ctx N] [--max-windows K] [--kld-base FPDIR]:
// WikiText-2 protocol; with --kld-base also the KL divergence against a base
// model over the same windows.
#include <fmt/format.h>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "core/timer.h"
#include "eval/perplexity.h"
#include "format/model_loader.h"
#include "io/json.h"
#include "io/mmap.h"
#include "io/output_path.h"
#include "model/model_lm.h"
#include "tokenizer/tokenizer.h"

namespace bwla::cli {

Runner register_ppl(CLI::App& app) {
  auto* sub = app.add_subcommand("ppl", "perplexity over a raw text file (WikiText-2 protocol)");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    std::string dir, data, kld_base, tokens_out;
    bool llama_protocol = false;
    PplOptions opt;
    Common common;
  };
  auto args = std::make_shared<Args>();
  auto& [dir, data, kld_base, tokens_out, llama_protocol, opt, common] = *args;
  sub->add_option("model", dir, "model directory")->required();
  sub->add_option("--data", data, "raw text file (e.g. wiki.test.raw)")->required();
  sub->add_option("--ctx", opt.ctx, "window length in tokens")->check(CLI::Range(2, 1 << 20));
  sub->add_option("--max-windows", opt.max_windows, "score at most K windows (0 = all)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--kld-base", kld_base,
                  "also compare with this base (e.g. FP32) model over the same windows: mean, "
                  "median, 99th percentile and max KL(base || model) per token, top-1 agreement, "
                  "PPL ratio");
  sub->add_flag("--llama-protocol", llama_protocol,
                "score as llama-perplexity does: BOS put in front of each window (replacing "
                "its first token) and only the second half of each window scored");
  sub->add_option("--tokens-out", tokens_out,
                  "also write the file's token ids as JSON (to check another tool's tokenization) "
                  "and, without --kld-base, each scored prediction's log-probability "
                  "(\"logprob_index\": index into \"tokens\" of the predicted token, "
                  "\"logprobs\": natural-log probability)");
  add_common(sub, common);
  return [args] {
    auto& [dir, data, kld_base, tokens_out, llama_protocol, opt, common] = *args;
    apply_common(common);
    opt.progress = !common.quiet;
    if (!tokens_out.empty())
      check_output_file(tokens_out,
                        kld_base.empty() ? std::vector<std::string>{dir, data}
                                         : std::vector<std::string>{dir, data, kld_base},
                        "--tokens-out", json_written_by_bwla);
    std::string text = read_text_file(data);
    BWLA_CHECK(!text.empty(), "'{}': file is empty", data);
    auto model = load_model(dir, /*prepack_dense=*/true);
    auto tok = Tokenizer::load_dir(dir);
    check_tokenizer_vocab(*tok, model->cfg.vocab, dir);
    std::unique_ptr<Model> base;
    if (!kld_base.empty()) {
      base = load_model(kld_base, /*prepack_dense=*/true);
      BWLA_CHECK(base->cfg.vocab == model->cfg.vocab,
                 "--kld-base '{}' has vocab_size {} but '{}' has {}", kld_base, base->cfg.vocab,
                 dir, model->cfg.vocab);
    }
    Timer tt;
    std::vector<int> ids = tok->encode(text, true);
    const double t_tok = tt.seconds();
    if (llama_protocol) {
      BWLA_CHECK(tok->bos_id() >= 0, "--llama-protocol: the tokenizer of '{}' has no BOS token",
                 dir);
      opt.llama_chunks = true;
      opt.bos = tok->bos_id();
    }
    if (!tokens_out.empty() && base)
      write_text_file_atomic(tokens_out,
                             json({{"written_by", "bwla"}, {"data", data}, {"tokens", ids}}).dump());
    if (base) {
      ModelLM lb(*base, opt.ctx), lq(*model, opt.ctx);
      const KldResult k = kl_divergence(lb, lq, ids, opt);
      if (common.json) {
        print_json({{"model", dir},
                    {"base", kld_base},
                    {"data", data},
                    {"ctx", opt.ctx},
                    {"protocol", llama_protocol ? "llama-perplexity" : "bwla"},
                    {"windows", k.model.windows},
                    {"tokens_scored", k.tokens},
                    {"ppl", k.model.ppl},
                    {"ppl_base", k.base.ppl},
                    {"ppl_ratio", k.ppl_ratio},
                    {"mean_kld", k.mean_kld},
                    {"kld_stderr", k.kld_stderr},
                    {"median_kld", k.median_kld},
                    {"p99_kld", k.p99_kld},
                    {"max_kld", k.max_kld},
                    {"top1_agreement", k.top1_agreement},
                    {"seconds", k.model.seconds}});
      } else {
        fmt::print("ppl {:.4f}  base ppl {:.4f}  ratio {:.4f}  ({} windows x {} tokens)\n",
                   k.model.ppl, k.base.ppl, k.ppl_ratio, k.model.windows, opt.ctx);
        fmt::print("KL(base || model) per token: mean {:.6f} ± {:.6f}, median {:.6f}, p99 {:.6f}, "
                   "max {:.6f}; top-1 agreement {:.2f} %\n",
                   k.mean_kld, k.kld_stderr, k.median_kld, k.p99_kld, k.max_kld,
                   100.0 * k.top1_agreement);
      }
      return 0;
    }
    opt.keep_token_logprobs = !tokens_out.empty();
    PplResult r = perplexity(*model, ids, opt);
    if (!tokens_out.empty())
      write_text_file_atomic(tokens_out, json({{"written_by", "bwla"},
                                               {"data", data},
                                               {"ctx", opt.ctx},
                                               {"tokens", ids},
                                               {"logprob_index", r.token_index},
                                               {"logprobs", r.token_logprobs}})
                                             .dump());
    if (common.json) {
      print_json({{"model", dir},
                  {"data", data},
                  {"ctx", opt.ctx},
                  {"protocol", llama_protocol ? "llama-perplexity" : "bwla"},
                  {"ppl", r.ppl},
                  {"mean_nll", r.mean_nll},
                  {"windows", r.windows},
                  {"tokens_scored", r.tokens_scored},
                  {"tokens_total", r.tokens_total},
                  {"tokenize_seconds", t_tok},
                  {"seconds", r.seconds},
                  {"tokens_per_s", r.tokens_per_s}});
    } else {
      fmt::print(stderr, "{} windows x {} tokens, {:.1f} s ({:.0f} tokens/s), tokenize {:.2f} s\n",
                 r.windows, opt.ctx, r.seconds, r.tokens_per_s, t_tok);
      fmt::print("ppl {:.4f}  tokens {}\n", r.ppl, r.tokens_total);
    }
    return 0;
  };
}

}  // namespace bwla::cli
