// The two real checkpoints beside stories260K: golden values computed by an
// independent implementation (mixtext-8m, its README), and a Hugging Face
// checkpoint exactly as published (TinyStories-656K: the tied table stored
// once, as lm_head.weight, aliased through safetensors __metadata__).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cli_run.h"
#include "io/json.h"
#include "shared_data.h"
#include "tmpdir.h"

namespace {

using bwla::json;
using bwla::test::describe;
using bwla::test::RunResult;
using bwla::test::run_bwla;
using bwla::test::shared_path;
using bwla::test::slurp;
using bwla::test::TempDir;


TEST(MixText8m, PerplexityMatchesTheTrainingCodesGoldenValue) {
  BWLA_REQUIRE_SHARED("models/mixtext-8m");
  BWLA_REQUIRE_SHARED("data/wikitext-2-raw/wiki.valid.raw");
  // README: the first 20,000 bytes of wiki.valid.raw, BOS in front, 8 windows
  // of 256 tokens, each scoring its 255 next-token predictions.
  TempDir td;
  const std::string text = slurp(shared_path("data/wikitext-2-raw/wiki.valid.raw")).substr(0, 20000);
  std::ofstream(td.file("v20k.txt"), std::ios::binary) << text;
  RunResult r = run_bwla({"ppl", shared_path("models/mixtext-8m"), "--data", td.file("v20k.txt"),
                          "--ctx", "256", "--max-windows", "8", "--json", "-q"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = json::parse(r.out);
  EXPECT_EQ(j["windows"], 8);
  EXPECT_EQ(j["tokens_scored"], 8 * 255);
  EXPECT_NEAR(j["mean_nll"].get<double>(), 4.842865, 2e-6);
  EXPECT_NEAR(j["ppl"].get<double>(), 126.8322, 2e-4);
}

TEST(MixText8m, GreedyTextMatchesTheTrainingCode) {
  BWLA_REQUIRE_SHARED("models/mixtext-8m");
  RunResult r = run_bwla({"generate", shared_path("models/mixtext-8m"), "-p",
                          "The history of the city", "-n", "24", "--temp", "0", "--json", "-q"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = json::parse(r.out);
  EXPECT_EQ(j.value("text", ""), " is the only way to make a world a world of\ntheirs.\n\t\t-- Lao Tse");
  EXPECT_EQ(j.value("prompt_tokens", 0), 6);  // BOS + 5
}

TEST(MixText8m, CalibrationLengthFollowsTheModelsContext) {
  BWLA_REQUIRE_SHARED("models/mixtext-8m");
  BWLA_REQUIRE_SHARED("data/c4/c4_sample.jsonl");
  // Before: the default --seqlen 512 failed on this 256-context model.
  TempDir td;
  RunResult r = run_bwla({"quantize", shared_path("models/mixtext-8m"), "--method", "rtn-sign",
                          "--nsamples", "1", "--shared", bwla::test::shared_dir(), "-q", "-o",
                          td.file("q")});
  ASSERT_EQ(r.code, 0) << describe(r);
  json rep = json::parse(slurp(td.file("q/quantize_report.json")));
  EXPECT_EQ(rep["settings"]["calibration"]["seq_len"], 256) << rep["settings"].dump();
}

TEST(TinyStories656K, LoadsTheTiedTableStoredAsLmHeadAndTellsAStory) {
  BWLA_REQUIRE_SHARED("models/TinyStories-656K");
  const std::string m = shared_path("models/TinyStories-656K");
  RunResult r = run_bwla({"generate", m, "-n", "40", "--temp", "0", "--json", "-q"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string text = json::parse(r.out).value("text", "");
  EXPECT_EQ(text.rfind("Once upon a time, there was a little girl named", 0), 0u) << text;
}

TEST(TinyStories656K, QuantizesPacksAndScoresThroughTheAlias) {
  BWLA_REQUIRE_SHARED("models/TinyStories-656K");
  BWLA_REQUIRE_SHARED("data/c4/c4_sample.jsonl");
  BWLA_REQUIRE_SHARED("data/wikitext-2-raw/wiki.test.raw");
  TempDir td;
  const std::string m = shared_path("models/TinyStories-656K");
  RunResult r = run_bwla({"quantize", m, "--method", "bwla", "--no-groups", "--abits", "6",
                          "--nsamples", "2", "--seqlen", "64", "--shared", bwla::test::shared_dir(),
                          "-t", "1", "-q", "-o", td.file("q")});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = run_bwla({"pack", td.file("q"), "-o", td.file("p"), "-q"});
  ASSERT_EQ(r.code, 0) << describe(r);
  for (const std::string& dir : {m, td.file("q"), td.file("p")}) {
    r = run_bwla({"ppl", dir, "--data", shared_path("data/wikitext-2-raw/wiki.test.raw"), "--ctx",
                  "128", "--max-windows", "4", "--json", "-q"});
    ASSERT_EQ(r.code, 0) << dir << "\n" << describe(r);
    const double ppl = json::parse(r.out)["ppl"].get<double>();
    EXPECT_GT(ppl, 1.0) << dir;
    EXPECT_LT(ppl, 2048.0 * 4) << dir;  // finite and not far past uniform
  }
  r = run_bwla({"export-gguf", m, "-o", td.file("t.gguf"), "-q"});
  EXPECT_EQ(r.code, 0) << describe(r);
}

}  // namespace
