// Log-likelihood scoring and zero-shot metric arithmetic with a fake LM and a
// byte tokenizer, where every answer is forced by construction.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "eval/loglik.h"
#include "eval/zeroshot.h"
#include "eval_fakes.h"

using namespace bwla;
using bwla::test::ByteTokenizer;
using bwla::test::FakeLM;

namespace {

constexpr int V = ByteTokenizer::kVocab;

std::vector<int> bytes(const std::string& s) {
  std::vector<int> v;
  for (unsigned char c : s) v.push_back(c);
  return v;
}

// Context-free distribution: ' ' 0.25, 'c' 0.25, 'd' 0.45, the other 255 share 0.05.
FakeLM unigram_lm() {
  return FakeLM(V, 512, [](const std::vector<int>&, float* row) {
    for (int v = 0; v < V; ++v) row[v] = (float)std::log(0.05 / (V - 3));
    row[' '] = (float)std::log(0.25);
    row['c'] = (float)std::log(0.25);
    row['d'] = (float)std::log(0.45);
  });
}

// Bigram: the token after t is t + 1 with probability 0.9.
FakeLM successor_lm(int max_ctx = 512) {
  return FakeLM(V, max_ctx, bwla::test::favourite_row(V, 0.9, [](const std::vector<int>& p) {
                  return (p.back() + 1) % V;
                }));
}

struct QuietLogs : ::testing::Environment {
  void SetUp() override { set_log_level(LogLevel::Quiet); }
};
const auto* quiet = ::testing::AddGlobalTestEnvironment(new QuietLogs);

}  // namespace

TEST(EvalLoglik, EncodePairByteTokenizer) {
  ByteTokenizer tok;
  EncodedPair p = encode_pair(tok, "Question: q\nAnswer:", " yes");
  std::vector<int> ctx = {ByteTokenizer::kBos};
  for (int b : bytes("Question: q\nAnswer:")) ctx.push_back(b);
  EXPECT_EQ(p.context, ctx);
  EXPECT_EQ(p.continuation, bytes(" yes"));
}

TEST(EvalLoglik, EncodePairMovesBoundaryToCommonPrefix) {
  ByteTokenizer tok(/*merge_ab=*/true);
  // encode("xa") = [BOS, x, a] but encode("xab") = [BOS, x, AB]: the merged
  // token straddles the boundary, so it belongs to the continuation.
  EncodedPair p = encode_pair(tok, "xa", "bc");
  EXPECT_EQ(p.context, (std::vector<int>{ByteTokenizer::kBos, 'x'}));
  EXPECT_EQ(p.continuation, (std::vector<int>{ByteTokenizer::kAB, 'c'}));
  // No merge across the boundary: plain split.
  p = encode_pair(tok, "ab", "ab");
  EXPECT_EQ(p.context, (std::vector<int>{ByteTokenizer::kBos, ByteTokenizer::kAB}));
  EXPECT_EQ(p.continuation, (std::vector<int>{ByteTokenizer::kAB}));
}

TEST(EvalLoglik, EncodePairTrailingSpaceAndEmptyContext) {
  ByteTokenizer tok;
  EncodedPair p = encode_pair(tok, "foo ", "bar");
  EXPECT_EQ(p.context, (std::vector<int>{ByteTokenizer::kBos, 'f', 'o', 'o'}));
  EXPECT_EQ(p.continuation, bytes(" bar"));
  ByteTokenizer nobos(false, /*add_bos=*/false);
  EXPECT_THROW(encode_pair(nobos, "", "x"), Error);  // neither BOS nor EOS
  p = encode_pair(tok, "", "x");
  EXPECT_EQ(p.context, (std::vector<int>{ByteTokenizer::kBos}));
}

TEST(EvalLoglik, LastContextRowPredictsFirstContinuationToken) {
  FakeLM lm = successor_lm();
  ByteTokenizer tok;
  LoglikScorer sc(lm);
  const double hi = std::log(0.9), lo = std::log(0.1 / (V - 1));
  LoglikResult r = sc.score(tok, "ab", "cde");  // b->c->d->e: all favourites
  EXPECT_NEAR(r.loglik, 3 * hi, 1e-5);
  EXPECT_TRUE(r.is_greedy);
  EXPECT_EQ(r.n_tokens, 3);
  r = sc.score(tok, "ab", "bcd");  // first token is not b's successor
  EXPECT_NEAR(r.loglik, lo + 2 * hi, 1e-5);
  EXPECT_FALSE(r.is_greedy);
  r = sc.score(tok, "ab", "cdf");
  EXPECT_NEAR(r.loglik, 2 * hi + lo, 1e-5);
  EXPECT_FALSE(r.is_greedy);
}

TEST(EvalLoglik, KvReuseMatchesScratchAndFeedsLess) {
  ByteTokenizer tok(/*merge_ab=*/true);
  std::vector<std::pair<std::string, std::string>> reqs = {
      {"The quick brown fox", " jumps"}, {"The quick brown fox", " sleeps all day"},
      {"The quick brown fox", " a"},     {"The quick brown cat", " ab"},
      {"The quick brown fox", " jumps"}, {"Another context xa", "bab"},
      {"Another context xa", "c"},       {"The quick", " brown"},
      // Contexts that are prefixes / extensions of the cached sequence.
      {"The quick brown fox", " jumps"}, {"The quick brown fox jum", "ps"},
      {"The quick brown fox", " jumps"}, {"The quick", " brown"},
  };
  FakeLM lm1(V, 512, bwla::test::hash_row(V)), lm2(V, 512, bwla::test::hash_row(V));
  LoglikScorer reuse(lm1, true), scratch(lm2, false);
  for (int pass = 0; pass < 2; ++pass)
    for (auto& [c, x] : reqs) {
      LoglikResult a = reuse.score(tok, c, x), b = scratch.score(tok, c, x);
      EXPECT_EQ(a.loglik, b.loglik) << c << "|" << x;
      EXPECT_EQ(a.is_greedy, b.is_greedy);
      EXPECT_EQ(a.n_tokens, b.n_tokens);
    }
  EXPECT_LT(lm1.fed, lm2.fed / 2);
  EXPECT_EQ(reuse.tokens_fed(), lm1.fed);
}

TEST(EvalLoglik, LeftTruncatesLongContext) {
  ByteTokenizer tok;
  FakeLM lm(V, 8, bwla::test::hash_row(V)), ref(V, 8, bwla::test::hash_row(V));
  LoglikScorer sc(lm), sref(ref, false);
  std::vector<int> ctx = tok.encode("0123456789");  // 11 tokens with BOS
  std::vector<int> cont = bytes("xyz");
  // Fed = ctx + 2 continuation tokens <= 8  ->  ctx keeps its last 6 tokens.
  LoglikResult r = sc.score(ctx, cont);
  EXPECT_EQ(r.context_dropped, 5);
  LoglikResult e = sref.score(std::vector<int>(ctx.end() - 6, ctx.end()), cont);
  EXPECT_EQ(e.context_dropped, 0);
  EXPECT_EQ(r.loglik, e.loglik);
  // reserve: a longer sibling continuation (5 tokens) leaves room for 4.
  r = sc.score(ctx, cont, 5);
  EXPECT_EQ(r.context_dropped, 7);
  // A continuation longer than the window: its first 2 tokens join the context
  // and only the last 7 (= max_context - 1) are scored.
  std::vector<int> longc = bytes("123456789");
  r = sc.score(ctx, longc);
  EXPECT_EQ(r.cont_dropped, 2);
  EXPECT_EQ(r.n_tokens, 7);
  std::vector<int> ctx2 = {longc[0], longc[1]};
  e = sref.score(ctx2, std::vector<int>(longc.begin() + 2, longc.end()));
  EXPECT_EQ(r.loglik, e.loglik);
  EXPECT_THROW(sc.score(std::vector<int>{}, cont), Error);
  EXPECT_THROW(sc.score(ctx, std::vector<int>{}), Error);
}

TEST(EvalZeroshot, AccVersusAccNormArithmetic) {
  FakeLM lm = unigram_lm();
  ByteTokenizer tok;
  // " c": total 2 ln .25 = -2.77 (-1.39/byte); " dddddddddd": ln .25 + 10 ln .45
  // = -9.37 (-0.85/byte). acc prefers the short choice, acc_norm the long one.
  LoglikScorer sc(lm);
  EXPECT_NEAR(sc.score(tok, "ctx", " c").loglik, 2 * std::log(0.25), 1e-5);
  EXPECT_NEAR(sc.score(tok, "ctx", " dddddddddd").loglik,
              std::log(0.25) + 10 * std::log(0.45), 1e-4);
  std::vector<TaskItem> items;
  for (int gold : {1, 0, 1, 1}) {
    TaskItem it;
    it.context = "Question: x\nAnswer:";
    it.continuations = {" c", " dddddddddd"};
    it.gold = gold;
    items.push_back(it);
  }
  TaskMetrics m = evaluate_items(lm, tok, items, TaskKind::MultipleChoice);
  EXPECT_EQ(m.n, 4);
  EXPECT_DOUBLE_EQ(m.acc, 0.25);
  EXPECT_DOUBLE_EQ(m.acc_norm, 0.75);
  EXPECT_DOUBLE_EQ(m.acc_stderr, std::sqrt(0.25 * 0.75 / 3));
  EXPECT_DOUBLE_EQ(m.acc_norm_stderr, std::sqrt(0.75 * 0.25 / 3));
  json j = m.to_json();
  EXPECT_EQ(j["n"], 4);
  EXPECT_TRUE(j.contains("acc_norm"));
  EXPECT_FALSE(j.contains("perplexity"));
}

TEST(EvalZeroshot, AccNormUsesUtf8Bytes) {
  // Nearly uniform LM (u = -ln p per token), 'c' slightly less likely.
  // " \u00e9\u00e9" = 5 bytes/tokens but 3 characters: per byte -u;
  // " ccc" = 4 bytes: per byte a bit below -u. Byte normalisation picks
  // choice 0; character normalisation (or the raw sum) would pick choice 1.
  FakeLM lm(V, 64, [](const std::vector<int>&, float* row) {
    for (int v = 0; v < V; ++v) row[v] = 0.f;
    row['c'] = -0.1f;
  });
  ByteTokenizer tok;
  TaskItem it;
  it.context = "q";
  it.continuations = {" \xc3\xa9\xc3\xa9", " ccc"};
  it.gold = 0;
  TaskMetrics m = evaluate_items(lm, tok, {it}, TaskKind::MultipleChoice);
  EXPECT_EQ(m.acc, 0.0);
  EXPECT_EQ(m.acc_norm, 1.0);
}

TEST(EvalZeroshot, WinograndePartialScoring) {
  // Bigram: after 't' the next token is ' ' with prob .9; after 'e' it is 'f'.
  // The shared continuation " was slippery." is then far likelier after
  // option "it" than after option "he"; the rest of the continuation scores
  // identically, so only the first continuation token decides.
  FakeLM lm2(V, 512, bwla::test::favourite_row(V, 0.9, [](const std::vector<int>& p) {
               return p.back() == 't' ? ' ' : (p.back() + 1) % V;
             }));
  ByteTokenizer tok;
  TaskItem it;
  std::string pre = "The cup fell because ";
  it.choice_contexts = {pre + "it", pre + "he"};
  it.continuations = {" was slippery.", " was slippery."};
  it.gold = 0;
  TaskMetrics m = evaluate_items(lm2, tok, {it}, TaskKind::Partial);
  EXPECT_EQ(m.acc, 1.0);
  it.gold = 1;
  m = evaluate_items(lm2, tok, {it}, TaskKind::Partial);
  EXPECT_EQ(m.acc, 0.0);
  EXPECT_FALSE(m.to_json().contains("acc_norm"));
  LoglikScorer sc(lm2);
  double d = sc.score(tok, it.choice_contexts[0], it.continuations[0]).loglik -
             sc.score(tok, it.choice_contexts[1], it.continuations[1]).loglik;
  EXPECT_NEAR(d, std::log(0.9) - std::log(0.1 / (V - 1)), 1e-4);
}

TEST(EvalZeroshot, LambadaGreedyAccuracyAndPerplexity) {
  FakeLM lm = successor_lm();
  ByteTokenizer tok;
  auto item = [](std::string ctx, std::string cont) {
    TaskItem it;
    it.context = ctx;
    it.continuations = {cont};
    return it;
  };
  // The 3 targets: greedy, not greedy (last token), greedy.
  std::vector<TaskItem> items = {item("ab", "cde"), item("ab", "cdf"), item("x", "yz")};
  TaskMetrics m = evaluate_items(lm, tok, items, TaskKind::Lambada);
  const double hi = std::log(0.9), lo = std::log(0.1 / (V - 1));
  const double sum = 3 * hi + (2 * hi + lo) + 2 * hi;
  EXPECT_NEAR(m.acc, 2.0 / 3, 1e-12);
  EXPECT_NEAR(m.perplexity, std::exp(-sum / 3), 1e-3);
  EXPECT_NEAR(m.perplexity_per_token, std::exp(-sum / 8), 1e-4);
  json j = m.to_json();
  EXPECT_TRUE(j.contains("perplexity"));
  EXPECT_FALSE(j.contains("acc_norm"));
}

TEST(EvalZeroshot, ItemEvaluationReuseMatchesScratch) {
  ByteTokenizer tok(true);
  std::vector<TaskItem> items;
  for (int k = 0; k < 6; ++k) {
    TaskItem it;
    it.context = "Question: number " + std::to_string(k) + " ab?\nAnswer:";
    it.continuations = {" yes", " no", " abab maybe", " a"};
    it.gold = k % 4;
    items.push_back(it);
  }
  TaskItem w;
  w.choice_contexts = {"Sam gave xa", "Sam gave xb"};
  w.continuations = {"b back.", "b back."};
  items.push_back(w);
  FakeLM a(V, 24, bwla::test::hash_row(V)), b(V, 24, bwla::test::hash_row(V));
  TaskMetrics ma = evaluate_items(a, tok, items, TaskKind::MultipleChoice, "t", true);
  TaskMetrics mb = evaluate_items(b, tok, items, TaskKind::MultipleChoice, "t", false);
  EXPECT_EQ(ma.acc, mb.acc);
  EXPECT_EQ(ma.acc_norm, mb.acc_norm);
  EXPECT_GT(ma.context_truncated, 0);  // max_context 24 forces left-truncation
  EXPECT_EQ(ma.context_truncated, mb.context_truncated);
  EXPECT_LT(ma.tokens_fed, mb.tokens_fed);
}

TEST(EvalZeroshot, StderrAndSubset) {
  EXPECT_DOUBLE_EQ(binomial_stderr(0.5, 101), std::sqrt(0.25 / 100));
  EXPECT_DOUBLE_EQ(binomial_stderr(0.0, 50), 0.0);
  EXPECT_DOUBLE_EQ(binomial_stderr(1.0, 1), 0.0);
  auto all = select_subset(10, 0, 1, true);
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(select_subset(10, 20, 1, true).size(), 10u);
  auto s1 = select_subset(1000, 50, 7, true), s2 = select_subset(1000, 50, 7, true),
       s3 = select_subset(1000, 50, 8, true);
  EXPECT_EQ(s1, s2);
  EXPECT_NE(s1, s3);
  ASSERT_EQ(s1.size(), 50u);
  for (size_t i = 1; i < s1.size(); ++i) EXPECT_LT(s1[i - 1], s1[i]);
  EXPECT_LT(s1.back(), 1000u);
}

TEST(EvalZeroshot, LimitTakesTheFirstItemsAsTheHarnessDoes) {
  // lm-evaluation-harness's --limit N scores documents 0..N-1; the random
  // subset was bwla's default before, so its numbers were not comparable.
  EXPECT_EQ(select_subset(1000, 5, 7, false), (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(select_subset(3, 5, 7, false), (std::vector<size_t>{0, 1, 2}));
  EvalOptions opt;
  EXPECT_FALSE(opt.random_subset);
}

TEST(EvalZeroshot, BadItemsThrow) {
  FakeLM lm = successor_lm();
  ByteTokenizer tok;
  TaskItem it;
  it.context = "c";
  it.continuations = {" a", " b"};
  it.gold = 2;
  it.where = "file.jsonl:9";
  try {
    evaluate_items(lm, tok, {it}, TaskKind::MultipleChoice);
    FAIL() << "expected bwla::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("file.jsonl:9"), std::string::npos);
  }
  it.gold = 0;
  it.continuations = {"", " b"};
  EXPECT_THROW(evaluate_items(lm, tok, {it}, TaskKind::MultipleChoice), Error);
}
