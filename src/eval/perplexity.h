// WikiText-2 style perplexity: the whole text tokenized once (BOS only at its
// start, as the tokenizer adds it), split into non-overlapping windows of ctx
// tokens (the remainder dropped), each window run from an empty cache and
// scoring its ctx − 1 next-token predictions; PPL = exp(mean NLL over every
// scored prediction of every window).
#pragma once
#include "model/logprob.h"
#include <vector>

#include "model/lm.h"
#include "model/model.h"

namespace bwla {

struct PplOptions {
  int ctx = 512;
  long max_windows = 0;  // 0 = all
  bool progress = true;
  // llama-perplexity's protocol, to compare with it on the same scored tokens:
  // each window's first token replaced by BOS (`bos`, ≥ 0), and only the second
  // half scored (positions ctx/2 .. ctx−2, i.e. ctx − 1 − ctx/2 predictions).
  bool llama_chunks = false;
  int bos = -1;
  // Keep every scored prediction's log-probability (PplResult::token_logprobs),
  // e.g. to check a server's echo logprobs against this oracle.
  bool keep_token_logprobs = false;
};

struct PplResult {
  double ppl = 0, mean_nll = 0;
  long tokens_scored = 0;  // predictions made (ctx - 1 per window; llama_chunks: ctx - 1 - ctx/2)
  long tokens_total = 0;   // tokens in the file
  int windows = 0;
  double seconds = 0, tokens_per_s = 0;
  // keep_token_logprobs: log p(tokens[token_index[i]] | the tokens before it in
  // its window), in scoring order.
  std::vector<long> token_index;
  std::vector<double> token_logprobs;
};

PplResult perplexity(LanguageModel& lm, const std::vector<int>& tokens, const PplOptions& opt);
// The same through the model's own forward (a ModelLM with a ctx-token cache).
PplResult perplexity(const Model& m, const std::vector<int>& tokens, const PplOptions& opt);

// KL divergence of a model (e.g. quantized) against a base (e.g. FP32) over
// the same windows and predictions as perplexity(), as llama.cpp's
// `llama-perplexity --kl-divergence` defines it: per prediction
// KL(P_base ‖ P) = Σ_v p_base(v)·(log p_base(v) − log p(v)); top-1 agreement
// is the share of predictions whose argmax is the same. Far less noisy than
// comparing two PPLs on a small model. (llama.cpp scores only the second half
// of each of its chunks; bwla scores every prediction of each window.)
struct KldResult {
  PplResult base, model;
  double mean_kld = 0, kld_stderr = 0, median_kld = 0, p99_kld = 0, max_kld = 0;
  double top1_agreement = 0;  // fraction in [0, 1]
  double ppl_ratio = 0;       // PPL(model) / PPL(base)
  long tokens = 0;            // predictions compared
};
KldResult kl_divergence(LanguageModel& base, LanguageModel& lm, const std::vector<int>& tokens,
                        const PplOptions& opt);

// KL(softmax(base) ‖ softmax(logits)) over `vocab` entries, in double.
double token_kld(const float* base, const float* logits, int vocab);

}  // namespace bwla
