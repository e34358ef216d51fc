#include "eval/zeroshot.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <numeric>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/timer.h"
#include "eval/loglik.h"

namespace bwla {

double binomial_stderr(double p, long n) {
  if (n < 2) return 0.0;
  return std::sqrt(p * (1.0 - p) / (double)(n - 1));
}

std::vector<size_t> select_subset(size_t n, long limit, uint64_t seed, bool random) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t(0));
  if (limit <= 0 || (size_t)limit >= n) return idx;
  if (!random) {
    idx.resize((size_t)limit);
    return idx;
  }
  Rng rng(seed);
  // Partial Fisher-Yates: the first `limit` entries become a uniform sample.
  for (size_t i = 0; i < (size_t)limit; ++i) std::swap(idx[i], idx[i + rng.below(n - i)]);
  idx.resize((size_t)limit);
  std::sort(idx.begin(), idx.end());
  return idx;
}

json TaskMetrics::to_json() const {
  json j;
  j["acc"] = acc;
  j["acc_stderr"] = acc_stderr;
  if (kind == TaskKind::MultipleChoice) {
    j["acc_norm"] = acc_norm;
    j["acc_norm_stderr"] = acc_norm_stderr;
  }
  if (kind == TaskKind::Lambada) {
    j["perplexity"] = perplexity;
    j["perplexity_definition"] = "exp(-mean over items of the target's summed log-likelihood)";
    j["perplexity_per_token"] = perplexity_per_token;
  }
  j["n"] = n;
  j["seconds"] = seconds;
  j["items_per_s"] = seconds > 0 ? (double)n / seconds : 0.0;
  j["tokens_per_s"] = seconds > 0 ? (double)tokens_fed / seconds : 0.0;
  j["tokens_fed"] = tokens_fed;
  j["context_truncated_items"] = context_truncated;
  return j;
}

namespace {

// Index of the largest value; ties go to the lowest index.
size_t argmax(const std::vector<double>& v) {
  size_t b = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[b]) b = i;
  return b;
}

}  // namespace

TaskMetrics evaluate_items(LanguageModel& lm, const Tokenizer& tok,
                           const std::vector<TaskItem>& items, TaskKind kind,
                           const std::string& label, bool reuse_cache) {
  TaskMetrics m;
  m.kind = kind;
  m.n = (long)items.size();
  LoglikScorer scorer(lm, reuse_cache);
  Progress progress(label, m.n);
  Timer timer;
  long correct = 0, correct_norm = 0, n_tokens = 0;
  double sum_ll = 0;
  for (size_t k = 0; k < items.size(); ++k) {
    const TaskItem& it = items[k];
    const size_t nc = it.continuations.size();
    BWLA_CHECK(nc >= 1 && it.gold >= 0 && (size_t)it.gold < nc,
               "{}: gold {} out of range for {} choices", it.where, it.gold, nc);
    BWLA_CHECK(it.choice_contexts.empty() || it.choice_contexts.size() == nc,
               "{}: {} choice contexts for {} continuations", it.where,
               it.choice_contexts.size(), nc);
    std::vector<EncodedPair> enc(nc);
    int reserve = 0;
    for (size_t i = 0; i < nc; ++i) {
      BWLA_CHECK(!it.continuations[i].empty(), "{}: choice {} is empty", it.where, i);
      enc[i] = encode_pair(tok, it.context_for(i), it.continuations[i]);
      BWLA_CHECK(!enc[i].continuation.empty(), "{}: choice {} encodes to no tokens", it.where, i);
      reserve = std::max(reserve, (int)enc[i].continuation.size());
    }
    std::vector<double> ll(nc), ll_norm(nc);
    bool truncated = false, greedy = true;
    for (size_t i = 0; i < nc; ++i) {
      LoglikResult r = scorer.score(enc[i].context, enc[i].continuation, reserve);
      ll[i] = r.loglik;
      ll_norm[i] = r.loglik / (double)it.continuations[i].size();
      truncated = truncated || r.context_dropped > 0 || r.cont_dropped > 0;
      greedy = greedy && r.is_greedy;
      n_tokens += r.n_tokens;
    }
    m.item_logliks.push_back(ll);
    if (kind == TaskKind::Lambada) {
      correct += greedy ? 1 : 0;
      sum_ll += ll[(size_t)it.gold];
    } else {
      correct += argmax(ll) == (size_t)it.gold ? 1 : 0;
      correct_norm += argmax(ll_norm) == (size_t)it.gold ? 1 : 0;
    }
    m.context_truncated += truncated ? 1 : 0;
    progress.update((long)k + 1, fmt::format("acc {:.4f}", (double)correct / (double)(k + 1)));
  }
  m.seconds = timer.seconds();
  m.tokens_fed = scorer.tokens_fed();
  const double n = (double)std::max<long>(m.n, 1);
  m.acc = correct / n;
  m.acc_stderr = binomial_stderr(m.acc, m.n);
  if (kind == TaskKind::MultipleChoice) {
    m.acc_norm = correct_norm / n;
    m.acc_norm_stderr = binomial_stderr(m.acc_norm, m.n);
  }
  if (kind == TaskKind::Lambada) {
    m.perplexity = std::exp(-sum_ll / n);
    m.perplexity_per_token = std::exp(-sum_ll / (double)std::max<long>(n_tokens, 1));
  }
  progress.finish(fmt::format("acc {:.4f}", m.acc));
  if (m.context_truncated > 0)
    log_warn("{}: {} item(s) had their context left-truncated to fit max_context {}", label,
             m.context_truncated, lm.max_context());
  return m;
}

namespace {

std::vector<const TaskSpec*> selected_specs(const EvalOptions& opt) {
  std::vector<std::string> names = opt.tasks.empty() ? task_names() : opt.tasks;
  std::vector<const TaskSpec*> specs;
  for (auto& n : names) {
    const TaskSpec* s = &find_task(n);  // throws listing the valid names
    if (std::find(specs.begin(), specs.end(), s) == specs.end()) specs.push_back(s);
  }
  BWLA_CHECK(opt.limit >= 0, "limit must be >= 0 (got {})", opt.limit);
  return specs;
}

std::vector<TaskItem> selected_items(const TaskSpec& s, const EvalOptions& opt, size_t* n_all) {
  std::vector<TaskItem> all = load_task(s.name, opt.data_dir);
  // An accuracy over nothing would print as 0.0000, a result that was never measured.
  BWLA_CHECK(!all.empty(), "{}: the task files under '{}' hold no items", s.name, opt.data_dir);
  std::vector<TaskItem> items;
  for (size_t i : select_subset(all.size(), opt.limit, opt.seed, opt.random_subset))
    items.push_back(all[i]);
  *n_all = all.size();
  return items;
}

}  // namespace

json zeroshot_requests(const EvalOptions& opt) {
  json out;
  out["tasks"] = json::object();
  for (const TaskSpec* s : selected_specs(opt)) {
    size_t n_all = 0;
    json items = json::array();
    for (const TaskItem& it : selected_items(*s, opt, &n_all)) {
      json ctx = json::array();
      for (size_t c = 0; c < it.continuations.size(); ++c) ctx.push_back(it.context_for(c));
      items.push_back({{"contexts", ctx}, {"continuations", it.continuations}, {"gold", it.gold},
                       {"where", it.where}});
    }
    out["tasks"][s->name] = {{"items", items}, {"n_total", (long)n_all}};
  }
  out["config"] = {{"limit", opt.limit}, {"random_subset", opt.random_subset}, {"seed", opt.seed},
                   {"data_dir", opt.data_dir}};
  return out;
}

json run_zeroshot(LanguageModel& lm, const Tokenizer& tok, const EvalOptions& opt) {
  const std::vector<const TaskSpec*> specs = selected_specs(opt);

  json out;
  out["results"] = json::object();
  for (const TaskSpec* s : specs) {
    size_t n_all = 0;
    std::vector<TaskItem> items = selected_items(*s, opt, &n_all);
    log_info("{}: evaluating {} of {} items{}", s->name, items.size(), n_all,
             items.size() < n_all ? (opt.random_subset ? " (random subset)" : " (the first)") : "");
    TaskMetrics m = evaluate_items(lm, tok, items, s->kind, s->name);
    json j = m.to_json();
    j["n_total"] = (long)n_all;
    if (opt.item_logliks) j["item_logliks"] = m.item_logliks;
    std::string headline = s->name == "hellaswag" ? "acc_norm" : "acc";
    j["headline_metric"] = headline;
    j["headline"] = j[headline];
    out["results"][s->name] = j;
  }

  json avg;
  avg["metrics"] = json::object();
  avg["missing"] = json::array();
  double sum = 0;
  int count = 0;
  for (auto& s : task_specs()) {
    if (s.average_metric.empty()) continue;
    avg["metrics"][s.name] = s.average_metric;
    if (out["results"].contains(s.name)) {
      sum += out["results"][s.name][s.average_metric].get<double>();
      ++count;
    } else {
      avg["missing"].push_back(s.name);
    }
  }
  avg["complete"] = avg["missing"].empty();
  avg["value"] = avg["missing"].empty() && count > 0 ? json(sum / count) : json(nullptr);
  avg["convention"] =
      "mean of acc (piqa, arc_easy, winogrande) and acc_norm (arc_challenge, hellaswag)";
  out["average_5"] = avg;

  json cfg;
  cfg["tasks"] = opt.tasks.empty() ? task_names() : opt.tasks;
  cfg["data_dir"] = opt.data_dir;
  cfg["limit"] = opt.limit;
  cfg["seed"] = opt.seed;
  cfg["acc_norm"] = "loglik / UTF-8 bytes of the continuation (with its leading space)";
  cfg["max_context"] = lm.max_context();
  cfg["tokenizer"] = tok.kind();
  out["config"] = cfg;
  return out;
}

std::string format_zeroshot_table(const json& result) {
  std::string s = "| Task | n | Metric | Value | ± Stderr |\n|---|---:|---|---:|---:|\n";
  auto row = [&](const std::string& task, const std::string& n, const std::string& metric,
                 const std::string& value, const std::string& se) {
    s += fmt::format("| {} | {} | {} | {} | {} |\n", task, n, metric, value, se);
  };
  if (result.contains("results")) {
    // Reporting order of task_specs(), then anything else (sorted).
    std::vector<std::string> order;
    for (auto& spec : task_specs())
      if (result["results"].contains(spec.name)) order.push_back(spec.name);
    for (auto& [task, r] : result["results"].items())
      if (std::find(order.begin(), order.end(), task) == order.end()) order.push_back(task);
    for (const std::string& task : order) {
      const json& r = result["results"][task];
      std::string n = std::to_string(r.value("n", 0L));
      bool first = true;
      for (const char* metric : {"acc", "acc_norm", "perplexity", "perplexity_per_token"}) {
        if (!r.contains(metric) || !r[metric].is_number()) continue;
        std::string se_key = std::string(metric) + "_stderr";
        std::string se = r.contains(se_key) && r[se_key].is_number()
                             ? fmt::format("{:.4f}", r[se_key].get<double>())
                             : "";
        row(first ? task : "", first ? n : "", metric,
            fmt::format("{:.4f}", r[metric].get<double>()), se);
        first = false;
      }
    }
  }
  if (result.contains("average_5")) {
    const json& a = result["average_5"];
    std::string v = a.contains("value") && a["value"].is_number()
                        ? fmt::format("{:.4f}", a["value"].get<double>())
                        : "n/a (missing tasks)";
    row("average_5", "", "acc/acc_norm*", v, "");
    s += "\n*average_5: acc for piqa, arc_easy, winogrande; acc_norm for arc_challenge, "
         "hellaswag.\n";
  }
  return s;
}

}  // namespace bwla
