#include "eval/perplexity.h"

#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "core/timer.h"
#include "model/forward.h"

namespace bwla {

double token_logprob(const float* logits, int vocab, int label) {
  double m = logits[0];
  for (int i = 1; i < vocab; ++i) m = std::max(m, (double)logits[i]);
  double s = 0;
  for (int i = 0; i < vocab; ++i) s += std::exp((double)logits[i] - m);
  return (double)logits[label] - m - std::log(s);
}

PplResult perplexity(const Model& m, const std::vector<int>& tokens, const PplOptions& opt) {
  BWLA_CHECK(opt.ctx >= 2, "--ctx must be at least 2, got {}", opt.ctx);
  BWLA_CHECK(opt.ctx <= m.cfg.max_pos,
             "--ctx {} exceeds the model's max_position_embeddings {}", opt.ctx, m.cfg.max_pos);
  long nw = (long)tokens.size() / opt.ctx;
  BWLA_CHECK(nw > 0, "text has {} tokens, fewer than one window of --ctx {}", tokens.size(),
             opt.ctx);
  if (opt.max_windows > 0) nw = std::min(nw, opt.max_windows);
  PplResult r;
  r.tokens_total = (long)tokens.size();
  const int V = m.cfg.vocab;
  std::vector<float> logits((size_t)opt.ctx * V);
  KVCache cache(m.cfg, opt.ctx);
  Progress prog("ppl", nw);
  Timer timer;
  double nll = 0;
  long count = 0;
  std::vector<double> tok_nll(opt.ctx - 1);  // summed in token order: the same at any thread count
  for (long w = 0; w < nw; ++w) {
    const int* tk = tokens.data() + w * opt.ctx;
    cache.pos = 0;
    forward_tokens(m, tk, opt.ctx, cache, logits.data(), true);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < opt.ctx - 1; ++t) tok_nll[t] = -token_logprob(logits.data() + (size_t)t * V, V, tk[t + 1]);
    double wn = 0;
    for (double v : tok_nll) wn += v;
    nll += wn;
    count += opt.ctx - 1;
    if (opt.progress) prog.update(w + 1, fmt::format("ppl {:.3f}", std::exp(nll / count)));
  }
  if (opt.progress) prog.finish();
  r.windows = (int)nw;
  r.tokens_scored = count;
  r.mean_nll = nll / count;
  r.ppl = std::exp(r.mean_nll);
  r.seconds = timer.seconds();
  r.tokens_per_s = (double)nw * opt.ctx / r.seconds;
  return r;
}

}  // namespace bwla
