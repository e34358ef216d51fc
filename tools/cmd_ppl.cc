// bwla ppl DIR --data FILE [--ctx N] [--max-windows K]: WikiText-2 protocol.
#include <fmt/format.h>

#include "cli_common.h"
#include "core/error.h"
#include "core/timer.h"
#include "eval/perplexity.h"
#include "io/mmap.h"
#include "model/tokenizer.h"

namespace bwla::cli {

Runner register_ppl(CLI::App& app) {
  auto* sub = app.add_subcommand("ppl", "perplexity over a raw text file (WikiText-2 protocol)");
  static std::string dir, data;
  static PplOptions opt;
  static Common common;
  sub->add_option("model", dir, "model directory")->required();
  sub->add_option("--data", data, "raw text file (e.g. wiki.test.raw)")->required();
  sub->add_option("--ctx", opt.ctx, "window length in tokens")->check(CLI::Range(2, 1 << 20));
  sub->add_option("--max-windows", opt.max_windows, "score at most K windows (0 = all)")
      ->check(CLI::NonNegativeNumber);
  add_common(sub, common);
  return [] {
    apply_common(common);
    opt.progress = !common.quiet;
    std::string text = read_text_file(data);
    BWLA_CHECK(!text.empty(), "'{}': file is empty", data);
    auto model = Model::load(dir, /*prepack_dense=*/true);
    auto tok = Tokenizer::load_dir(dir);
    check_tokenizer_vocab(*tok, model->cfg.vocab, dir);
    Timer tt;
    std::vector<int> ids = tok->encode(text, true);
    const double t_tok = tt.seconds();
    PplResult r = perplexity(*model, ids, opt);
    if (common.json) {
      print_json({{"model", dir},
                  {"data", data},
                  {"ctx", opt.ctx},
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
