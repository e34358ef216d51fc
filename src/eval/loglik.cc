#include "eval/loglik.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bwla {

EncodedPair encode_pair(const Tokenizer& tok, const std::string& context_in,
                        const std::string& continuation_in) {
  std::string context = context_in, continuation = continuation_in;
  // Trailing whitespace of the context belongs to the continuation.
  size_t keep = context.find_last_not_of(" \t\n\r");
  keep = keep == std::string::npos ? 0 : keep + 1;
  if (keep < context.size()) {
    continuation = context.substr(keep) + continuation;
    context.resize(keep);
  }
  std::vector<int> ctx = tok.encode(context, true);
  std::vector<int> whole = tok.encode(context + continuation, true);
  size_t n = std::min(ctx.size(), whole.size());
  size_t lcp = 0;
  while (lcp < n && ctx[lcp] == whole[lcp]) ++lcp;
  EncodedPair p;
  p.context.assign(whole.begin(), whole.begin() + (long)lcp);
  p.continuation.assign(whole.begin() + (long)lcp, whole.end());
  if (p.context.empty()) {
    int start = tok.bos_id() >= 0 ? tok.bos_id() : tok.eos_id();
    BWLA_CHECK(start >= 0,
               "empty context for continuation '{}' and the tokenizer has neither BOS nor EOS",
               continuation_in);
    p.context.push_back(start);
  }
  return p;
}

double token_logprob(const float* row, int vocab, int token, bool* is_argmax) {
  const double lp = token_logprob(row, vocab, token);
  if (is_argmax) {
    int best = 0;  // the first maximum, as greedy decoding picks it
    for (int v = 1; v < vocab; ++v)
      if (row[v] > row[best]) best = v;
    *is_argmax = best == token;
  }
  return lp;
}

LoglikScorer::LoglikScorer(LanguageModel& lm, bool reuse_cache)
    : lm_(lm), reuse_(reuse_cache), vocab_(lm.vocab_size()) {
  lm_.reset();
}

void LoglikScorer::truncate(size_t n) {
  if (n >= cached_.size()) return;
  lm_.truncate((int)n);
  cached_.resize(n);
  if (ctx_len_ > n) ctx_len_ = 0;
}

void LoglikScorer::feed(const int* tokens, int n, bool keep_all_rows) {
  if (n <= 0) return;
  BWLA_ASSERT((size_t)lm_.position() == cached_.size(), "model position {} != cached {}",
              lm_.position(), cached_.size());
  const size_t v = (size_t)vocab_;
  if (keep_all_rows) {
    rows_.resize((size_t)n * v);
    lm_.append(tokens, n, rows_.data());
  } else {
    // Bounded scratch for long contexts: only the last row is needed.
    const int chunk = (int)std::max<size_t>(1, (size_t(1) << 22) / v);
    for (int s = 0; s < n; s += chunk) {
      int m = std::min(chunk, n - s);
      scratch_.resize((size_t)m * v);
      lm_.append(tokens + s, m, scratch_.data());
    }
    int m_last = (n - 1) % chunk + 1;
    ctx_row_.assign(scratch_.begin() + (long)((m_last - 1) * v),
                    scratch_.begin() + (long)(m_last * v));
  }
  cached_.insert(cached_.end(), tokens, tokens + n);
  tokens_fed_ += n;
}

LoglikResult LoglikScorer::score(const std::vector<int>& context_orig,
                                 const std::vector<int>& cont_orig, int reserve) {
  BWLA_CHECK(!context_orig.empty(), "log-likelihood request with an empty context");
  BWLA_CHECK(!cont_orig.empty(), "log-likelihood request with an empty continuation");
  const int max_ctx = lm_.max_context();
  BWLA_CHECK(max_ctx >= 2, "max_context {} too small to score anything", max_ctx);
  // A continuation longer than the window: its first tokens move into the
  // context (conditioned on, not scored) so the last max_ctx-1 tokens are scored.
  std::vector<int> context_in = context_orig, cont = cont_orig;
  int cont_dropped = 0;
  if ((int)cont.size() > max_ctx - 1) {
    cont_dropped = (int)cont.size() - (max_ctx - 1);
    context_in.insert(context_in.end(), cont.begin(), cont.begin() + cont_dropped);
    cont.erase(cont.begin(), cont.begin() + cont_dropped);
  }
  reserve = std::min(reserve, max_ctx - 1);
  const int clen = (int)cont.size();
  // Fed sequence = context + cont[:-1] must fit: len(ctx) <= max_ctx + 1 - len(cont).
  const int room = max_ctx + 1 - std::max(clen, reserve);
  LoglikResult r;
  r.context_dropped = std::max(0, (int)context_in.size() - std::max(room, 1));
  const int* ctx = context_in.data() + r.context_dropped;
  const size_t ctx_n = context_in.size() - (size_t)r.context_dropped;

  if (!reuse_) {
    lm_.reset();
    cached_.clear();
    ctx_len_ = 0;
  }
  size_t lcp = 0, lim = std::min(ctx_n, cached_.size());
  while (lcp < lim && cached_[lcp] == ctx[lcp]) ++lcp;
  if (lcp == ctx_n && ctx_len_ == ctx_n) {
    truncate(ctx_n);  // same context as before: reuse its cache and last row
  } else {
    truncate(std::min(lcp, ctx_n - 1));  // re-feed at least the last context token
    size_t from = cached_.size();
    feed(ctx + from, (int)(ctx_n - from), false);
    ctx_len_ = ctx_n;
  }
  feed(cont.data(), clen - 1, true);

  for (int i = 0; i < clen; ++i) {
    const float* row = i == 0 ? ctx_row_.data() : rows_.data() + (size_t)(i - 1) * vocab_;
    bool greedy = false;
    r.loglik += token_logprob(row, vocab_, cont[i], &greedy);
    r.is_greedy = r.is_greedy && greedy;
  }
  r.n_tokens = clen;
  r.cont_dropped = cont_dropped;
  return r;
}

}  // namespace bwla
