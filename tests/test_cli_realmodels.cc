// The two real checkpoints beside stories260K: golden values computed by an
// independent implementation (mixtext-8m, its README), and a Hugging Face
// checkpoint exactly as published (TinyStories-656K: the tied table stored
// once, as lm_head.weight, aliased through safetensors __metadata__).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>

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
  RunResult r = run_bwla({"quantize", m, "--method", "bwla", "--abits", "6",
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
  // Byte fallback without the 256 <0xXX> pieces: llama.cpp's tokenizer would
  // abort on it, so the export is refused with the reason, and writes nothing.
  r = run_bwla({"export-gguf", m, "-o", td.file("t.gguf"), "-q"});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_NE(r.err.find("0 of the 256 <0xXX> byte pieces"), std::string::npos) << describe(r);
  EXPECT_FALSE(std::filesystem::exists(td.file("t.gguf")));
}

// The default path on every real model: `bwla quantize` with its defaults
// (BWLA W1A6, one sign plane) -> `bwla pack` with its defaults -> the packed
// model scores like the fake-quant one. Two tolerances:
//  * with `--head-dtype f16` the packed model differs from the fake-quant one
//    only by fp16 α, μ, int8 PSP factors and an fp16 head/embedding table:
//    KL(fake-quant ‖ packed) < 2 % of KL(FP32 ‖ fake-quant), PPLs within 3 %;
//  * with the default 4-bit head (a deliberate lossy choice, tied tables
//    included): < 6 % and within 12 %. The PPL ratio over these 762 scored
//    tokens is the noisier check: on stories260K it was 1.030-1.098 over
//    seeds 0-4 of this calibration, with KL(fake-quant ‖ packed) 0.073-0.096
//    nats per token.
class DefaultPath : public ::testing::TestWithParam<const char*> {};

// `bwla ppl DIR --kld-base BASE` over 6 windows of 128 WikiText-2 test tokens.
json kld_against(const std::string& dir, const std::string& base) {
  RunResult k = run_bwla({"ppl", dir, "--kld-base", base, "--data",
                          shared_path("data/wikitext-2-raw/wiki.test.raw"), "--ctx", "128",
                          "--max-windows", "6", "-t", "2", "--json", "-q"});
  EXPECT_EQ(k.code, 0) << describe(k);
  return k.code == 0 ? json::parse(k.out) : json();
}

// Test names from model directory names.
std::string model_param_name(const ::testing::TestParamInfo<const char*>& info) {
  std::string n = info.param;
  for (char& c : n)
    if (!isalnum((unsigned char)c)) c = '_';
  return n;
}

TEST_P(DefaultPath, QuantizePackAndScoreLikeTheFakeQuantModel) {
  const std::string name = GetParam();
  BWLA_REQUIRE_SHARED("models/" + name);
  BWLA_REQUIRE_SHARED("data/c4/c4_sample.jsonl");
  BWLA_REQUIRE_SHARED("data/wikitext-2-raw/wiki.test.raw");
  TempDir td;
  const std::string m = shared_path("models/" + name);
  RunResult r = run_bwla({"quantize", m, "-o", td.file("q"), "--nsamples", "4", "--seqlen", "128",
                          "--shared", bwla::test::shared_dir(), "-t", "2", "-q", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json q = json::parse(r.out);
  const json cfg = json::parse(slurp(td.file("q/config.json")))["quantization_config"];
  EXPECT_EQ(cfg["abits"], 6);
  EXPECT_EQ(cfg["weight_quantizer"]["groups"], false) << cfg.dump();
  r = run_bwla({"pack", td.file("q"), "-o", td.file("p"), "-q", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json p = json::parse(r.out);
  EXPECT_EQ(p["max_planes_used"], 1) << p.dump();
  EXPECT_EQ(p["head_dtype"], "Q4") << p.dump();
  // The packed file is no larger than quantize's own estimate (which counts
  // scales and PSP factors at 16 bits; pack's default int8 PSP factors take
  // 8), up to the padding of rows to 64-bit words (stories260K's down_proj:
  // 172 columns stored in 192 bits).
  EXPECT_LE(p["bits_per_weight"].get<double>(), 1.02 * q["bits_per_weight"].get<double>())
      << p.dump() << "\n" << q.dump();
  EXPECT_GT(p["bits_per_weight"].get<double>(), 1.0);
  r = run_bwla({"pack", td.file("q"), "-o", td.file("p16"), "-q", "--head-dtype", "f16"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const auto& kld = kld_against;
  const json fq = kld(td.file("q"), m);
  ASSERT_FALSE(fq.is_null());
  EXPECT_GT(fq["mean_kld"].get<double>(), 0.01);  // the quantized model is not the FP one
  for (const auto& [dir, kld_share, ppl_tol] :
       {std::tuple<std::string, double, double>{td.file("p16"), 0.02, 0.03},
        std::tuple<std::string, double, double>{td.file("p"), 0.06, 0.12}}) {
    const json pk = kld(dir, td.file("q"));
    ASSERT_FALSE(pk.is_null());
    EXPECT_LT(pk["mean_kld"].get<double>(), kld_share * fq["mean_kld"].get<double>())
        << dir << ": packed vs fake-quant " << pk.dump() << "\nfake-quant vs FP32 " << fq.dump();
    EXPECT_NEAR(pk["ppl"].get<double>() / pk["ppl_base"].get<double>(), 1.0, ppl_tol)
        << dir << " " << pk.dump();
  }
}

// The column-group layout (`quantize --groups`) on every real model: `pack`
// stores it in the column-group form (format 4) at about quantize's own bit
// estimate, and the packed model (f16 head, to isolate the linears) scores
// like the fake-quant one: KL(fake-quant ‖ packed) < 4 % of KL(FP32 ‖
// fake-quant), PPLs within 3 %. The share is twice DefaultPath's because the
// grouped model is closer to FP32, not because it moves more: measured on
// mixtext-8m 0.0069 nats (2.7 %) with an fp32 head and F32 scales, where the
// one-plane default's packed model moves 0.0123 nats from its fake-quant one
// (fp32 sums in another order flip some 6-bit activation levels downstream).
class GroupedPath : public ::testing::TestWithParam<const char*> {};

TEST_P(GroupedPath, PacksInTheColumnGroupFormAndScoresLikeTheFakeQuantModel) {
  const std::string name = GetParam();
  BWLA_REQUIRE_SHARED("models/" + name);
  BWLA_REQUIRE_SHARED("data/c4/c4_sample.jsonl");
  BWLA_REQUIRE_SHARED("data/wikitext-2-raw/wiki.test.raw");
  TempDir td;
  const std::string m = shared_path("models/" + name);
  RunResult r = run_bwla({"quantize", m, "-o", td.file("q"), "--groups", "--nsamples", "4",
                          "--seqlen", "128", "--psp-iters", "3", "--shared",
                          bwla::test::shared_dir(), "-t", "2", "-q", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json q = json::parse(r.out);
  r = run_bwla({"pack", td.file("q"), "-o", td.file("p"), "-q", "--json", "--head-dtype", "f16"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json p = json::parse(r.out);
  const int layers = json::parse(slurp(m + "/config.json"))["num_hidden_layers"];
  EXPECT_EQ(p["arb_rc_linears"], 7 * layers) << p.dump();
  EXPECT_EQ(p["max_planes_used"], 0) << p.dump();
  // Bits: the fake-quant estimate counts PSP at 16 bits (pack: int8) but not
  // the padding of rows to 64-bit words (stories260K's down_proj: 172 columns
  // in 192 bits) nor the second plane's words.
  const double pb = p["bits_per_weight"].get<double>(), qb = q["bits_per_weight"].get<double>();
  EXPECT_LT(pb, 1.15 * qb) << p.dump() << "\n" << q.dump();
  EXPECT_GT(pb, 2.0);
  const auto& kld = kld_against;
  const json fq = kld(td.file("q"), m), pk = kld(td.file("p"), td.file("q"));
  ASSERT_FALSE(fq.is_null());
  ASSERT_FALSE(pk.is_null());
  EXPECT_GT(fq["mean_kld"].get<double>(), 0.01);
 EXPECT_LT(pk["mean_kld"].get<double>(), 0.04 * fq["mean_kld"].get<double>())
      << "packed vs fake-quant " << pk.dump() << "\nfake-quant vs FP32 " << fq.dump();
  EXPECT_NEAR(pk["ppl"].get<double>() / pk["ppl_base"].get<double>(), 1.0, 0.03) << pk.dump();
}

INSTANTIATE_TEST_SUITE_P(RealModels, GroupedPath,
                         ::testing::Values("stories260K-hf", "TinyStories-656K", "mixtext-8m"),
                         model_param_name);

INSTANTIATE_TEST_SUITE_P(RealModels, DefaultPath,
                         ::testing::Values("stories260K-hf", "TinyStories-656K", "mixtext-8m"),
                         model_param_name);

}  // namespace
