// Zero-shot scoring end to end with real tokenizers and the real stories260K
// checkpoint from ../shared (skipped when absent).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "core/log.h"
#include "core/threads.h"
#include "eval/loglik.h"
#include "eval/zeroshot.h"
#include "format/model_loader.h"
#include "model/model.h"
#include "model/model_lm.h"
#include "shared_data.h"
#include "tokenizer/tokenizer.h"

using namespace bwla;

namespace {

// The harness split: context tokens are a prefix of encode(context + cont),
// the continuation decodes back to the continuation text (no spurious "▁"
// token from encoding it separately), and the first continuation token
// carries the leading space.
void check_split(const Tokenizer& tok, const std::string& ctx, const std::string& cont) {
  EncodedPair p = encode_pair(tok, ctx, cont);
  std::vector<int> whole = tok.encode(ctx + cont, true);
  std::vector<int> joined = p.context;
  joined.insert(joined.end(), p.continuation.begin(), p.continuation.end());
  EXPECT_EQ(joined, whole) << ctx << "|" << cont;
  std::string bytes;
  for (int id : p.continuation) bytes += tok.token_bytes(id);
  EXPECT_EQ(bytes, cont) << tok.kind();  // raw bytes: the leading space is kept
  EXPECT_EQ(tok.decode(p.context, true), ctx) << tok.kind();
}

}  // namespace

TEST(EvalRealModel, HarnessSplitWithRealTokenizers) {
  BWLA_REQUIRE_SHARED("models/stories260K-hf/tokenizer.json");
  BWLA_REQUIRE_SHARED("tokenizers/smollm-bpe/tokenizer.json");
  for (const char* dir : {"models/stories260K-hf", "tokenizers/smollm-bpe"}) {
    auto tok = Tokenizer::load_dir(bwla::test::shared_path(dir));
    check_split(*tok, "Question: How do I open a jar?\nAnswer:", " Twist the lid.");
    check_split(*tok, "The cat sat on the", " mat");
    check_split(*tok, "Roof shingle removal: A man is sitting on a roof. he",
                " starts pulling up roofing on a roof.");
  }
}

TEST(EvalRealModel, Stories260KSmallRun) {
  BWLA_REQUIRE_SHARED("models/stories260K-hf/model.safetensors");
  BWLA_REQUIRE_SHARED("data/piqa/valid.jsonl");
  set_log_level(LogLevel::Quiet);
  set_num_threads(1);  // a 260K-parameter model: threads only add contention
  const std::string dir = bwla::test::shared_path("models/stories260K-hf");
  auto model = load_model(dir);
  auto tok = Tokenizer::load_dir(dir);
  ModelLM lm(*model), lm2(*model);

  // Cached scoring agrees with from-scratch scoring on real items.
  auto items = load_task("hellaswag", bwla::test::shared_path("data"));
  std::vector<TaskItem> few;
  for (size_t i : select_subset(items.size(), 12, 3, /*random=*/true)) few.push_back(items[i]);
  LoglikScorer cached(lm, true), scratch(lm2, false);
  for (auto& it : few)
    for (size_t c = 0; c < it.continuations.size(); ++c) {
      LoglikResult a = cached.score(*tok, it.context_for(c), it.continuations[c]);
      LoglikResult b = scratch.score(*tok, it.context_for(c), it.continuations[c]);
      EXPECT_NEAR(a.loglik, b.loglik, 1e-3 * std::max(1.0, std::fabs(b.loglik)));
      EXPECT_LT(a.loglik, 0.0);
      EXPECT_EQ(a.n_tokens, b.n_tokens);
    }
  EXPECT_LT(cached.tokens_fed(), scratch.tokens_fed());

  EvalOptions opt;
  opt.tasks = {"piqa", "winogrande", "lambada"};
  opt.data_dir = bwla::test::shared_path("data");
  opt.limit = 25;
  opt.seed = 1;
  opt.random_subset = true;
  json r = run_zeroshot(lm, *tok, opt);
  for (auto& t : opt.tasks) {
    const json& m = r["results"][t];
    EXPECT_EQ(m["n"], 25) << t;
    EXPECT_GE(m["acc"].get<double>(), 0.0);
    EXPECT_LE(m["acc"].get<double>(), 1.0);
    EXPECT_GT(m["items_per_s"].get<double>(), 0.0);
  }
  // A 260K-parameter TinyStories model is near chance on two-way tasks and
  // has a large (finite) LAMBADA perplexity.
  double ppl = r["results"]["lambada"]["perplexity"];
  EXPECT_TRUE(std::isfinite(ppl) && ppl > 1.0) << ppl;
  std::string table = format_zeroshot_table(r);
  EXPECT_NE(table.find("winogrande"), std::string::npos);
  std::printf("%s", table.c_str());
}
