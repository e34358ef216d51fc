// Known answers for the headline metric: perplexity and KL divergence of fake
// language models whose probabilities are known exactly, and the window,
// remainder and BOS handling pinned against a hand-computed example.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "eval/perplexity.h"
#include "eval_fakes.h"

using namespace bwla;
using bwla::test::favourite_row;
using bwla::test::FakeLM;

namespace {

PplOptions quiet(int ctx, long max_windows = 0) {
  PplOptions o;
  o.ctx = ctx;
  o.max_windows = max_windows;
  o.progress = false;
  return o;
}

std::vector<int> iota_tokens(int n, int vocab) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = i % vocab;
  return t;
}

TEST(Perplexity, LlamaProtocolPutsBosFirstAndScoresTheSecondHalf) {
  // ctx 8: each window's first token becomes BOS (15) and only positions
  // 4..6 are scored (predicting tokens 5..7), as llama-perplexity does.
  const int vocab = 16;
  std::vector<int> tokens(17);
  for (int i = 0; i < 17; ++i) tokens[i] = i % 14;
  const double p = 0.5, miss = (1.0 - p) / (vocab - 1);
  std::vector<std::vector<int>> windows;
  FakeLM lm(vocab, 8, [&](const std::vector<int>& pre, float* row) {
    if (pre.size() == 1) windows.push_back({});
    windows.back().push_back(pre.back());
    // Favourite: the successor, except after 5 (a miss at position 5 -> 6).
    favourite_row(vocab, p, [](const std::vector<int>& q) {
      return q.back() == 5 ? 0 : (q.back() + 1) % 14;
    })(pre, row);
  });
  PplOptions o = quiet(8);
  o.llama_chunks = true;
  o.bos = 15;
  PplResult r = perplexity(lm, tokens, o);
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_EQ(windows[0], (std::vector<int>{15, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(windows[1], (std::vector<int>{15, 9, 10, 11, 12, 13, 0, 1}));
  EXPECT_EQ(r.tokens_scored, 6);  // 2 windows x (8 - 1 - 4)
  // Window 0 scores 4→5 hit, 5→6 miss, 6→7 hit; window 1: 12→13 hit,
  // 13→0 hit, 0→1 hit.
  EXPECT_NEAR(r.mean_nll, (5 * -std::log(p) + 1 * -std::log(miss)) / 6, 1e-6);
  // The same through the KL path, which scores the same predictions.
  FakeLM other(vocab, 8, [](const std::vector<int>&, float* row) {
    for (int v = 0; v < vocab; ++v) row[v] = 0.f;
  });
  windows.clear();
  const KldResult k = kl_divergence(lm, other, tokens, o);
  EXPECT_EQ(k.tokens, 6);
  EXPECT_NEAR(k.base.mean_nll, r.mean_nll, 1e-9);
  o.bos = -1;
  EXPECT_THROW(perplexity(lm, tokens, o), Error);
}

TEST(Perplexity, UniformLogitsGiveTheVocabularySize) {
  for (int vocab : {2, 50, 4096}) {
    FakeLM lm(vocab, 64, [vocab](const std::vector<int>&, float* row) {
      for (int v = 0; v < vocab; ++v) row[v] = 0.25f;  // any constant
    });
    PplResult r = perplexity(lm, iota_tokens(200, vocab), quiet(32));
    EXPECT_NEAR(r.ppl, (double)vocab, 1e-9 * vocab) << vocab;
    EXPECT_NEAR(r.mean_nll, std::log((double)vocab), 1e-12);
  }
}

TEST(Perplexity, ProbabilityPOnTheTrueTokenGivesOneOverP) {
  const int vocab = 97;
  for (double p : {0.9, 0.5, 0.01}) {
    // The true next token of 0,1,2,... is the successor of the last token.
    FakeLM lm(vocab, 64, favourite_row(vocab, p, [vocab](const std::vector<int>& pre) {
                return (pre.back() + 1) % vocab;
              }));
    PplResult r = perplexity(lm, iota_tokens(300, vocab), quiet(16));
    EXPECT_NEAR(r.mean_nll, -std::log(p), 1e-6) << p;
    EXPECT_NEAR(r.ppl, std::exp(-std::log(p)), 1e-5 / p) << p;
  }
}

TEST(Perplexity, WindowsRemainderAndBosAsHandComputed) {
  // 11 tokens, ctx 4: windows [0..3] and [4..7] each from an empty cache, the
  // 3-token remainder dropped; 3 predictions per window. BOS (9) is only where
  // the tokenizer put it, at the very start; no window gets another.
  const int vocab = 16;
  const std::vector<int> tokens = {9, 1, 2, 5, 6, 7, 9, 10, 11, 12, 13};
  const double p = 0.5, miss = (1.0 - p) / (vocab - 1);
  std::vector<std::vector<int>> windows;
  FakeLM lm(vocab, 4, [&](const std::vector<int>& pre, float* row) {
    if (pre.size() == 1) windows.push_back({});
    windows.back().push_back(pre.back());
    favourite_row(vocab, p, [](const std::vector<int>& q) { return (q.back() + 1) % 16; })(pre, row);
  });
  PplResult r = perplexity(lm, tokens, quiet(4));
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_EQ(windows[0], (std::vector<int>{9, 1, 2, 5}));
  EXPECT_EQ(windows[1], (std::vector<int>{6, 7, 9, 10}));
  EXPECT_EQ(r.windows, 2);
  EXPECT_EQ(r.tokens_scored, 6);
  EXPECT_EQ(r.tokens_total, 11);
  // Window 1: 9→1 miss, 1→2 hit, 2→5 miss. Window 2: 6→7 hit, 7→9 miss, 9→10 hit.
  // (5→6 crosses the window boundary and is not scored.)
  const double want = (3 * -std::log(p) + 3 * -std::log(miss)) / 6;
  EXPECT_NEAR(r.mean_nll, want, 1e-6);
  // --max-windows 1 scores only the first window: 1 hit, 2 misses.
  r = perplexity(lm, tokens, quiet(4, 1));
  EXPECT_EQ(r.windows, 1);
  EXPECT_NEAR(r.mean_nll, (-std::log(p) + 2 * -std::log(miss)) / 3, 1e-6);
}

TEST(Perplexity, TooShortTextAndTooLongWindowsAreErrors) {
  FakeLM lm(8, 16, [](const std::vector<int>&, float* row) { std::fill(row, row + 8, 0.f); });
  EXPECT_THROW(perplexity(lm, iota_tokens(10, 8), quiet(12)), Error);
  EXPECT_THROW(perplexity(lm, iota_tokens(100, 8), quiet(32)), Error);  // > max_context
  EXPECT_THROW(perplexity(lm, iota_tokens(100, 8), quiet(1)), Error);
}

TEST(KlDivergence, KnownValuesAgainstAUniformBase) {
  const int vocab = 10;
  const double p = 0.6;
  FakeLM base(vocab, 32, [](const std::vector<int>&, float* row) { std::fill(row, row + 10, 0.f); });
  FakeLM lm(vocab, 32, favourite_row(vocab, p, [](const std::vector<int>&) { return 3; }));
  const KldResult k = kl_divergence(base, lm, iota_tokens(64, vocab), quiet(8));
  // KL(U ‖ Q) = Σ (1/V)·(log(1/V) − log q_v).
  const double q_rest = (1 - p) / (vocab - 1);
  const double want = -std::log((double)vocab) - (std::log(p) + (vocab - 1) * std::log(q_rest)) / vocab;
  EXPECT_NEAR(k.mean_kld, want, 1e-6);
  EXPECT_NEAR(k.median_kld, want, 1e-6);
  EXPECT_NEAR(k.p99_kld, want, 1e-6);
  EXPECT_NEAR(k.kld_stderr, 0.0, 1e-9);
  EXPECT_EQ(k.tokens, 8 * 7);
  EXPECT_DOUBLE_EQ(k.top1_agreement, 0.0);  // uniform's argmax is token 0, the model's is 3
  EXPECT_NEAR(k.base.ppl, (double)vocab, 1e-9 * vocab);
  EXPECT_NEAR(k.ppl_ratio, k.model.ppl / vocab, 1e-9);
  // A model against itself: zero divergence, full agreement.
  const KldResult self = kl_divergence(lm, lm, iota_tokens(64, vocab), quiet(8));
  EXPECT_NEAR(self.mean_kld, 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(self.top1_agreement, 1.0);
  EXPECT_DOUBLE_EQ(self.ppl_ratio, 1.0);
}

TEST(KlDivergence, PercentilesAreNearestRank) {
  // The model matches the base except at every 10th position, where it
  // diverges: 10 % of predictions carry all the KL.
  const int vocab = 4;
  FakeLM base(vocab, 64, [](const std::vector<int>&, float* row) { std::fill(row, row + 4, 0.f); });
  FakeLM lm(vocab, 64, [](const std::vector<int>& pre, float* row) {
    std::fill(row, row + 4, 0.f);
    if (pre.size() % 10 == 0) row[1] = 5.f;
  });
  const KldResult k = kl_divergence(base, lm, iota_tokens(61, vocab), quiet(61));
  ASSERT_EQ(k.tokens, 60);
  EXPECT_EQ(k.median_kld, 0.0);
  EXPECT_GT(k.p99_kld, 0.1);
  EXPECT_EQ(k.p99_kld, k.max_kld);
  EXPECT_NEAR(k.top1_agreement, 54.0 / 60.0, 1e-12);
}

TEST(KlDivergence, TokenKldIsNonNegativeAndZeroOnEqualRows) {
  const float a[3] = {1.f, 2.f, 3.f}, b[3] = {3.f, 2.f, 1.f};
  EXPECT_EQ(token_kld(a, a, 3), 0.0);
  EXPECT_GT(token_kld(a, b, 3), 0.0);
}

}  // namespace
