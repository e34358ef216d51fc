#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "core/timer.h"
#include "model/model_lm.h"

namespace bwla {

namespace {

int argmax(const float* x, int n) { return (int)(std::max_element(x, x + n) - x); }

long check_windows(const LanguageModel& lm, const std::vector<int>& tokens, const PplOptions& opt) {
  BWLA_CHECK(opt.ctx >= 2, "--ctx must be at least 2, got {}", opt.ctx);
  BWLA_CHECK(opt.ctx <= lm.max_context(),
             "--ctx {} exceeds the model's max_position_embeddings {}", opt.ctx, lm.max_context());
  long nw = (long)tokens.size() / opt.ctx;
  BWLA_CHECK(nw > 0, "text has {} tokens, fewer than one window of --ctx {}", tokens.size(),
             opt.ctx);
  if (opt.max_windows > 0) nw = std::min(nw, opt.max_windows);
  BWLA_CHECK(!opt.llama_chunks || (opt.bos >= 0 && opt.bos < lm.vocab_size()),
             "llama-perplexity protocol needs the tokenizer's BOS id, got {}", opt.bos);
  BWLA_CHECK(!opt.llama_chunks || opt.ctx >= 4, "--ctx must be at least 4 with the llama protocol");
  return nw;
}

// First scored position of a window.
int first_scored(const PplOptions& opt) { return opt.llama_chunks ? opt.ctx / 2 : 0; }

// Window w as the model sees it (llama protocol: BOS in front).
const int* window_tokens(const std::vector<int>& tokens, long w, const PplOptions& opt,
                         std::vector<int>& buf) {
  const int* tk = tokens.data() + w * opt.ctx;
  if (!opt.llama_chunks) return tk;
  buf.assign(tk, tk + opt.ctx);
  buf[0] = opt.bos;
  return buf.data();
}

// Runs one window from an empty cache: logits of all ctx positions.
void run_window(LanguageModel& lm, const int* tk, int ctx, std::vector<float>& logits) {
  logits.resize((size_t)ctx * lm.vocab_size());
  lm.reset();
  lm.append(tk, ctx, logits.data());
}

PplResult finish(double nll, long count, long nw, long total, const PplOptions& opt, double secs) {
  PplResult r;
  r.tokens_total = total;
  r.windows = (int)nw;
  r.tokens_scored = count;
  r.mean_nll = nll / count;
  r.ppl = std::exp(r.mean_nll);
  r.seconds = secs;
  r.tokens_per_s = (double)nw * opt.ctx / secs;
  return r;
}

}  // namespace

double token_kld(const float* base, const float* logits, int vocab) {
  const double lb = log_sum_exp(base, vocab), lq = log_sum_exp(logits, vocab);
  double kl = 0;
  for (int i = 0; i < vocab; ++i) {
    const double lpb = (double)base[i] - lb;
    kl += std::exp(lpb) * (lpb - ((double)logits[i] - lq));
  }
  return std::max(kl, 0.0);  // ≥ 0 in exact arithmetic; rounding can dip below
}

PplResult perplexity(LanguageModel& lm, const std::vector<int>& tokens, const PplOptions& opt) {
  const long nw = check_windows(lm, tokens, opt);
  const int V = lm.vocab_size();
  std::vector<float> logits;
  const int first = first_scored(opt), P = opt.ctx - 1 - first;
  std::vector<double> tok_nll(P);  // summed in token order: the same at any thread count
  std::vector<int> buf;
  Progress prog("ppl", nw);
  Timer timer;
  double nll = 0;
  long count = 0;
  std::vector<long> keep_index;
  std::vector<double> keep_lp;
  for (long w = 0; w < nw; ++w) {
    const int* tk = window_tokens(tokens, w, opt, buf);
    run_window(lm, tk, opt.ctx, logits);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < P; ++i) {
      const int t = first + i;
      tok_nll[i] = -token_logprob(logits.data() + (size_t)t * V, V, tk[t + 1]);
    }
    for (double v : tok_nll) nll += v;
    if (opt.keep_token_logprobs)
      for (int i = 0; i < P; ++i) {
        keep_index.push_back(w * opt.ctx + first + i + 1);
        keep_lp.push_back(-tok_nll[i]);
      }
    count += P;
    if (opt.progress) prog.update(w + 1, fmt::format("ppl {:.3f}", std::exp(nll / count)));
  }
  if (opt.progress) prog.finish();
  PplResult r = finish(nll, count, nw, (long)tokens.size(), opt, timer.seconds());
  r.token_index = std::move(keep_index);
  r.token_logprobs = std::move(keep_lp);
  return r;
}

PplResult perplexity(const Model& m, const std::vector<int>& tokens, const PplOptions& opt) {
  BWLA_CHECK(opt.ctx <= m.cfg.max_pos,
             "--ctx {} exceeds the model's max_position_embeddings {}", opt.ctx, m.cfg.max_pos);
  ModelLM lm(m, std::max(opt.ctx, 2));
  return perplexity(lm, tokens, opt);
}

KldResult kl_divergence(LanguageModel& base, LanguageModel& lm, const std::vector<int>& tokens,
                        const PplOptions& opt) {
  BWLA_CHECK(base.vocab_size() == lm.vocab_size(),
             "--kld-base: the base model's vocabulary ({}) differs from the model's ({})",
             base.vocab_size(), lm.vocab_size());
  const long nw = std::min(check_windows(base, tokens, opt), check_windows(lm, tokens, opt));
  const int V = lm.vocab_size(), first = first_scored(opt), P = opt.ctx - 1 - first;
  std::vector<int> buf;
  std::vector<float> lb, lq;
  std::vector<double> kld((size_t)nw * P), nll_b(P), nll_q(P);
  std::vector<char> same((size_t)nw * P);
  Progress prog("kld", nw);
  Timer timer;
  double sb = 0, sq = 0;
  for (long w = 0; w < nw; ++w) {
    const int* tk = window_tokens(tokens, w, opt, buf);
    run_window(base, tk, opt.ctx, lb);
    run_window(lm, tk, opt.ctx, lq);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < P; ++i) {
      const int t = first + i;
      const float* b = lb.data() + (size_t)t * V;
      const float* q = lq.data() + (size_t)t * V;
      kld[(size_t)w * P + i] = token_kld(b, q, V);
      same[(size_t)w * P + i] = argmax(b, V) == argmax(q, V);
      nll_b[i] = -token_logprob(b, V, tk[t + 1]);
      nll_q[i] = -token_logprob(q, V, tk[t + 1]);
    }
    for (int t = 0; t < P; ++t) sb += nll_b[t], sq += nll_q[t];
    if (opt.progress) {
      double s = 0;
      for (size_t i = 0; i < (size_t)(w + 1) * P; ++i) s += kld[i];
      prog.update(w + 1, fmt::format("mean KLD {:.5f}", s / ((w + 1) * P)));
    }
  }
  if (opt.progress) prog.finish();
  KldResult r;
  const double secs = timer.seconds();
  const long n = nw * P;
  r.base = finish(sb, n, nw, (long)tokens.size(), opt, secs);
  r.model = finish(sq, n, nw, (long)tokens.size(), opt, secs);
  r.tokens = n;
  double s = 0, s2 = 0;
  long agree = 0;
  for (long i = 0; i < n; ++i) s += kld[i], s2 += kld[i] * kld[i], agree += same[i];
  r.mean_kld = s / n;
  r.kld_stderr = n > 1 ? std::sqrt(std::max(0.0, s2 / n - r.mean_kld * r.mean_kld) / (n - 1)) : 0.0;
  r.top1_agreement = (double)agree / n;
  std::vector<double> sorted = kld;
  std::sort(sorted.begin(), sorted.end());
  // Percentiles by the nearest rank.
  auto pct = [&](double p) {
    const long rank = std::clamp((long)std::ceil(p * (double)n), 1L, n);
    return sorted[(size_t)rank - 1];
  };
  r.median_kld = pct(0.5);
  r.p99_kld = pct(0.99);
  r.max_kld = sorted.back();
  r.ppl_ratio = r.model.ppl / r.base.ppl;
  return r;
}

}  // namespace bwla
