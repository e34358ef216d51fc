// Zero-shot evaluation: runs tasks (eval/tasks.h) through the log-likelihood
// scorer (eval/loglik.h) and aggregates lm-evaluation-harness metrics.
//
// Metrics per multiple-choice item (ties go to the lowest index):
//   acc      = [argmax_i loglik_i == gold]
//   acc_norm = [argmax_i loglik_i / bytes_i == gold], bytes_i = UTF-8 byte
//              length of continuation i as scored (including its leading space)
// WinoGrande (partial scoring) reports acc only. LAMBADA reports acc (the
// target is greedy: every target token is its row's argmax) and
//   perplexity           = exp(-mean over items of the item's summed loglik)
//                          (the harness's "perplexity" for lambada)
//   perplexity_per_token = exp(-sum loglik / sum target tokens).
// Standard error of an accuracy p over n items: sqrt(p (1 - p) / (n - 1)).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/tasks.h"
#include "io/json.h"
#include "model/lm.h"
#include "tokenizer/tokenizer.h"

namespace bwla {

struct EvalOptions {
  std::vector<std::string> tasks;  // empty = all of task_names()
  std::string data_dir;            // e.g. ../shared/data
  long limit = 0;                  // 0 = all items; else the first `limit` items
  bool random_subset = false;      // limit draws `limit` items with `seed` instead
  uint64_t seed = 0;               // draws the subset when random_subset
  bool item_logliks = false;       // results[task]["item_logliks"]: [[loglik per choice]]
};

struct TaskMetrics {
  TaskKind kind = TaskKind::MultipleChoice;
  long n = 0;
  double acc = 0, acc_stderr = 0;
  double acc_norm = 0, acc_norm_stderr = 0;           // MultipleChoice only
  double perplexity = 0, perplexity_per_token = 0;    // Lambada only
  long context_truncated = 0;  // items whose context was left-truncated
  long tokens_fed = 0;
  double seconds = 0;
  std::vector<std::vector<double>> item_logliks;  // per item, per choice (not in to_json)
  // {acc, acc_stderr, [acc_norm, acc_norm_stderr | perplexity, ...], n, seconds, items_per_s, ...}
  json to_json() const;
};

// sqrt(p (1 - p) / (n - 1)); 0 when n < 2.
double binomial_stderr(double p, long n);

// Indices of the items to evaluate: all (in order) when limit <= 0 or
// limit >= n; else the first `limit` (lm-evaluation-harness's --limit), or,
// with `random`, `limit` distinct indices drawn with bwla::Rng(seed), sorted.
std::vector<size_t> select_subset(size_t n, long limit, uint64_t seed, bool random);

// Scores items and aggregates their metrics; progress on stderr under `label`.
// reuse_cache=false re-feeds every request from scratch (reference path).
TaskMetrics evaluate_items(LanguageModel& lm, const Tokenizer& tok,
                           const std::vector<TaskItem>& items, TaskKind kind,
                           const std::string& label = "eval", bool reuse_cache = true);

// Runs the requested tasks. Unknown task names throw bwla::Error (listing the
// valid ones) before anything is loaded. Returns
//   {"results": {task: TaskMetrics::to_json() + "n_total", "headline_metric",
//                "headline"},
//    "average_5": {"value", "metrics": {task: metric}, "complete", "missing"},
//    "config": {...}}
// average_5 = mean over piqa (acc), arc_easy (acc), arc_challenge (acc_norm),
// hellaswag (acc_norm), winogrande (acc) — the BWLA/ARB-LLM convention; its
// value is null unless all five were run.
json run_zeroshot(LanguageModel& lm, const Tokenizer& tok, const EvalOptions& opt);

// The items run_zeroshot would score, as strings (no model involved):
//   {"tasks": {task: {"items": [{"contexts": [one per choice], "continuations": [...],
//                               "gold", "where"}], "n_total"}}, "config": {...}}
// so that another scorer can score exactly the same requests.
json zeroshot_requests(const EvalOptions& opt);

// Markdown table of run_zeroshot's result (one row per task metric, then the
// 5-task average).
std::string format_zeroshot_table(const json& result);

}  // namespace bwla
