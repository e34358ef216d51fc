// bwla eval MODEL --tasks ... [--limit N] [--json-out FILE]: zero-shot accuracy.
#include <fmt/format.h>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "core/timer.h"
#include "eval/zeroshot.h"
#include "format/model_loader.h"
#include "io/json.h"
#include "io/output_path.h"
#include "model/model_lm.h"
#include "tokenizer/tokenizer.h"

namespace bwla::cli {

Runner register_eval(CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "zero-shot tasks (lm-evaluation-harness conventions)");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    std::string dir, tasks, out_file, requests_out;
    EvalOptions opt;
    int ctx = 0;
    Common common;
  };
  auto args = std::make_shared<Args>();
  auto& [dir, tasks, out_file, requests_out, opt, ctx, common] = *args;
  opt.data_dir = "../shared/data";
  sub->add_option("model", dir, "model directory")->required();
  sub->add_option("--tasks", tasks,
                  "comma-separated: piqa,hellaswag,winogrande,arc_easy,arc_challenge,lambada "
                  "(default all)");
  sub->add_option("--data-dir", opt.data_dir, "directory holding the task data");
  sub->add_option("--limit", opt.limit,
                  "items per task (0 = all): the first N, as lm-evaluation-harness's --limit")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--random-subset", opt.random_subset,
                "--limit draws N items at random (with --seed) instead of the first N");
  sub->add_option("--seed", opt.seed, "seed for --random-subset");
  sub->add_option("--ctx", ctx, "context size (0 = model maximum)")->check(CLI::NonNegativeNumber);
  sub->add_option("--json-out", out_file, "also write the JSON result to this file");
  sub->add_option("--requests-out", requests_out,
                  "also write the scored requests as JSON: per task, the selected items' "
                  "contexts (one per choice), continuations, gold index and each choice's "
                  "log-likelihood, so that another scorer (e.g. through bwla serve) can score "
                  "the same strings and be compared");
  add_common(sub, common);
  return [args] {
    auto& [dir, tasks, out_file, requests_out, opt, ctx, common] = *args;
    apply_common(common);
    opt.tasks.clear();
    size_t b = 0;
    while (b < tasks.size()) {
      size_t e = tasks.find(',', b);
      if (e == std::string::npos) e = tasks.size();
      if (e > b) opt.tasks.push_back(tasks.substr(b, e - b));
      b = e + 1;
    }
    if (!out_file.empty())
      check_output_file(out_file, {dir, opt.data_dir}, "--json-out", json_written_by_bwla);
    json requests;
    if (!requests_out.empty()) {
      check_output_file(requests_out, {dir, opt.data_dir, out_file}, "--requests-out",
                        json_written_by_bwla);
      requests = zeroshot_requests(opt);
      opt.item_logliks = true;
    }
    auto model = load_model(dir, /*prepack_dense=*/true);
    auto tok = Tokenizer::load_dir(dir);
    check_tokenizer_vocab(*tok, model->cfg.vocab, dir);
    ModelLM lm(*model, ctx);
    Timer t;
    json r = run_zeroshot(lm, *tok, opt);
    r["model"] = dir;
    r["seconds"] = t.seconds();
    if (!requests_out.empty()) {
      // Each choice's log-likelihood next to its request, out of the result.
      for (auto& [task, res] : r["results"].items()) {
        json& items = requests["tasks"][task]["items"];
        const json& ll = res["item_logliks"];
        BWLA_CHECK(ll.size() == items.size(), "{}: {} scores for {} requests", task, ll.size(),
                   items.size());
        for (size_t i = 0; i < items.size(); ++i) items[i]["logliks"] = ll[i];
        res.erase("item_logliks");
      }
      write_owned_json_file(requests_out, requests);
    }
    if (!out_file.empty()) write_owned_json_file(out_file, r);
    if (common.json)
      print_json(r);
    else
      fmt::print("{}", format_zeroshot_table(r));
    return 0;
  };
}

}  // namespace bwla::cli
