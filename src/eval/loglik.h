// Log-likelihood of a continuation given a context, scored through a
// LanguageModel with KV-cache reuse (lm-evaluation-harness conventions).
//
// Tokenization (encode_pair): the harness way, so that SentencePiece
// tokenizers do not get a spurious "▁" at the start of a separately encoded
// continuation:
//   * trailing whitespace of the context is moved to the front of the
//     continuation (as the harness does; the prompts here have none);
//   * ctx = encode(context, add_special=true)          (BOS per tokenizer)
//     whole = encode(context + continuation, add_special=true)
//     continuation tokens = whole[len(ctx):], context tokens = whole[:len(ctx)];
//   * if ctx is not a prefix of whole (a merge across the boundary), the
//     boundary moves back to the longest common prefix of ctx and whole, so
//     the merged token belongs to the continuation;
//   * an empty context (no BOS) becomes [bos] (or [eos] when there is no BOS)
//     so that the first continuation token has a prediction.
//
// Scoring (LoglikScorer): the input is context + continuation[:-1] (the last
// continuation token is never fed); the logits row of the last context token
// predicts the first continuation token. Requests sharing a token prefix with
// the cached sequence reuse it: the cache is truncated to the common prefix
// (whole contexts: truncate(len(ctx)) and the saved last-context logits row).
// When len(ctx) + len(cont) - 1 > max_context(), the context is left-truncated
// (its oldest tokens, BOS included, are dropped — as the harness does).
#pragma once
#include "model/logprob.h"
#include <string>
#include <vector>

#include "model/lm.h"
#include "tokenizer/tokenizer.h"

namespace bwla {

struct EncodedPair {
  std::vector<int> context;
  std::vector<int> continuation;
};

EncodedPair encode_pair(const Tokenizer& tok, const std::string& context,
                        const std::string& continuation);

struct LoglikResult {
  double loglik = 0;       // sum over continuation tokens of log p(token | prefix)
  bool is_greedy = true;   // every continuation token is the argmax of its row
  int n_tokens = 0;        // continuation tokens scored
  int context_dropped = 0; // context tokens left-truncated to fit max_context()
  int cont_dropped = 0;    // leading continuation tokens not scored (longer than the window)
};

class LoglikScorer {
 public:
  // reuse_cache=false resets the model for every request (reference path).
  explicit LoglikScorer(LanguageModel& lm, bool reuse_cache = true);

  // reserve: length of the longest continuation among the item's choices, so
  // that all choices of an item see the same (left-truncated) context; the
  // context keeps at most max_context() + 1 - max(reserve, len(cont)) tokens.
  // Throws bwla::Error for an empty context/continuation, or a continuation
  // longer than max_context().
  LoglikResult score(const std::vector<int>& context, const std::vector<int>& continuation,
                     int reserve = 0);
  LoglikResult score(const Tokenizer& tok, const std::string& context,
                     const std::string& continuation) {
    EncodedPair p = encode_pair(tok, context, continuation);
    return score(p.context, p.continuation);
  }

  // Tokens the model has processed (fed), across all requests.
  long tokens_fed() const { return tokens_fed_; }

 private:
  // Appends tokens to the model; keep_all_rows: rows_ gets all n logits rows,
  // otherwise only the last row is kept (in ctx_row_).
  void feed(const int* tokens, int n, bool keep_all_rows);
  void truncate(size_t n);

  LanguageModel& lm_;
  bool reuse_;
  int vocab_;
  std::vector<int> cached_;        // tokens in the model's cache
  std::vector<float> ctx_row_;     // logits of cached_[ctx_len_ - 1]
  size_t ctx_len_ = 0;             // 0: ctx_row_ invalid
  std::vector<float> rows_;        // logits of the last feed (keep_all_rows)
  std::vector<float> scratch_;
  long tokens_fed_ = 0;
};

// log-softmax of `row` evaluated at `token`, and whether `token` is the
// (first) argmax of the row.
double token_logprob(const float* row, int vocab, int token, bool* is_argmax);

}  // namespace bwla
