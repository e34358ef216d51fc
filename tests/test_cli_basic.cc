// End-to-end tests of the bwla command line: JSON output conventions, exit
// codes and error messages for bad input. Runs the built binary with stdout and
// stderr captured separately.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"
#include "io/json.h"
#include "shared_data.h"
#include "tmpdir.h"

namespace {

using bwla::json;
using bwla::test::shared_path;
using bwla::test::TempDir;
using bwla::test::describe;
using bwla::test::RunResult;
using bwla::test::run_bwla;
using bwla::test::shell_quote;
using bwla::test::slurp;

const char* kModel = "models/stories260K-hf";
const char* kWiki = "data/wikitext-2-raw/wiki.test.raw";



// Parses stdout as exactly one JSON object (fails the test otherwise).
json parse_stdout(const RunResult& r) {
  json j;
  try {
    j = json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stdout is not one JSON value: " << e.what() << "\n" << describe(r);
    return json::object();
  }
  EXPECT_TRUE(j.is_object()) << describe(r);
  return j;
}

// A clean error: the process exited with status 1 (no signal / abort) and the
// message went to stderr.
void expect_clean_error(const RunResult& r) {
  EXPECT_TRUE(r.exited) << "killed by a signal\n" << describe(r);
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_FALSE(r.err.empty()) << describe(r);
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

#define REQUIRE_MODEL() BWLA_REQUIRE_SHARED(kModel)
#define REQUIRE_MODEL_AND_WIKI() \
  do {                           \
    REQUIRE_MODEL();             \
    BWLA_REQUIRE_SHARED(kWiki);  \
  } while (0)

// ---------------------------------------------------------------- info

TEST(CliInfo, JsonOnStdout) {
  REQUIRE_MODEL();
  RunResult r = run_bwla({"info", shared_path(kModel), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_stdout(r);
  EXPECT_EQ(j.value("architecture", ""), "LlamaForCausalLM");
  EXPECT_EQ(j.value("vocab_size", 0), 512);
  EXPECT_EQ(j.value("num_layers", 0), 5);
  EXPECT_EQ(j.value("tokenizer", ""), "bpe-sentencepiece");
  EXPECT_EQ(j.value("max_position_embeddings", 0), 512);
  EXPECT_EQ(j.value("qk_norm", true), false);
}

TEST(CliInfo, HumanOutputOnStdout) {
  REQUIRE_MODEL();
  RunResult r = run_bwla({"info", shared_path(kModel)});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "LlamaForCausalLM")) << describe(r);
  // Human output is not JSON.
  EXPECT_FALSE(json::accept(r.out)) << describe(r);
}

// ---------------------------------------------------------------- generate

TEST(CliGenerate, GreedyJson) {
  REQUIRE_MODEL();
  RunResult r = run_bwla({"generate", shared_path(kModel), "--temp", "0", "-n", "20", "--json",
                          "-t", "1", "-p", "Once upon a time"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_stdout(r);
  std::string text = j.value("prompt", "") + j.value("text", "");
  EXPECT_EQ(text.rfind("Once upon a time", 0), 0u) << text;
  EXPECT_GT(j.value("decode_tps", 0.0), 0.0) << j.dump();
  EXPECT_GT(j.value("generated_tokens", 0), 0) << j.dump();
  EXPECT_LE(j.value("generated_tokens", 100), 20) << j.dump();
}

TEST(CliGenerate, GreedyFromBosStartsWithOnceUponATime) {
  // stories260K's most likely continuation of BOS is the TinyStories opening.
  REQUIRE_MODEL();
  RunResult r =
      run_bwla({"generate", shared_path(kModel), "--temp", "0", "-n", "20", "--json", "-t", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_stdout(r);
  EXPECT_EQ(j.value("text", "").rfind("Once upon a time", 0), 0u) << j.dump();
  EXPECT_GT(j.value("decode_tps", 0.0), 0.0) << j.dump();
}

TEST(CliGenerate, ExplicitEmptyPromptIsAnError) {
  REQUIRE_MODEL();
  RunResult r = run_bwla({"generate", shared_path(kModel), "-p", "", "-n", "5", "-t", "1"});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, "prompt")) << describe(r);
  EXPECT_TRUE(r.out.empty()) << describe(r);
}

TEST(CliGenerate, SeededSamplingIsReproducible) {
  REQUIRE_MODEL();
  auto sample = [](const std::string& seed) {
    RunResult r = run_bwla({"generate", shared_path(kModel), "--temp", "1", "--seed", seed, "-n",
                            "24", "--json", "-t", "1", "-q"});
    EXPECT_EQ(r.code, 0) << describe(r);
    return parse_stdout(r).value("text", "");
  };
  const std::string a = sample("5"), b = sample("5");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b) << "same seed gave different text";
  const std::string c = sample("6"), d = sample("7");
  EXPECT_TRUE(c != a || d != a) << "seeds 5, 6 and 7 all gave: " << a;
}

// ---------------------------------------------------------------- ppl

TEST(CliPpl, JsonFourWindows) {
  REQUIRE_MODEL_AND_WIKI();
  RunResult r = run_bwla({"ppl", shared_path(kModel), "--data", shared_path(kWiki), "--ctx", "128",
                          "--max-windows", "4", "--json", "-t", "1", "-q"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_stdout(r);
  const double ppl = j.value("ppl", 0.0);
  EXPECT_TRUE(std::isfinite(ppl)) << j.dump();
  EXPECT_GT(ppl, 1.0) << j.dump();
  EXPECT_EQ(j.value("windows", 0), 4) << j.dump();
  EXPECT_EQ(j.value("ctx", 0), 128) << j.dump();
}

TEST(CliPpl, MissingDataFileNamesThePath) {
  REQUIRE_MODEL();
  TempDir tmp;
  const std::string missing = tmp.file("no_such_file.raw");
  RunResult r =
      run_bwla({"ppl", shared_path(kModel), "--data", missing, "--ctx", "128", "-t", "1"});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, missing)) << describe(r);
  EXPECT_TRUE(r.out.empty()) << describe(r);
}

TEST(CliPpl, EmptyDataFileIsAnError) {
  REQUIRE_MODEL();
  TempDir tmp;
  const std::string empty = tmp.file("empty.raw");
  std::ofstream(empty).close();
  RunResult r = run_bwla({"ppl", shared_path(kModel), "--data", empty, "--ctx", "128", "-t", "1"});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, empty)) << describe(r);
}

TEST(CliPpl, CtxBeyondMaxPositionsNamesTheLimit) {
  REQUIRE_MODEL();
  // A short text keeps tokenization cheap; the limit check must not depend on it.
  TempDir tmp;
  const std::string data = tmp.file("short.raw");
  {
    std::ofstream f(data);
    for (int i = 0; i < 200; ++i) f << "Once upon a time there was a little girl named Lily. ";
  }
  RunResult r = run_bwla({"ppl", shared_path(kModel), "--data", data, "--ctx", "1024",
                          "--max-windows", "1", "-t", "1"});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, "512")) << describe(r);
  EXPECT_TRUE(contains(r.err, "1024")) << describe(r);
}

// ---------------------------------------------------------------- eval

TEST(CliEval, PiqaLimitFive) {
  REQUIRE_MODEL();
  BWLA_REQUIRE_SHARED("data/piqa/valid.jsonl");
  RunResult r = run_bwla({"eval", shared_path(kModel), "--tasks", "piqa", "--limit", "5",
                          "--data-dir", shared_path("data"), "--json", "-t", "1", "-q"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_stdout(r);
  ASSERT_TRUE(j.contains("results") && j["results"].contains("piqa")) << j.dump();
  EXPECT_EQ(j["results"]["piqa"].value("n", 0), 5) << j.dump();
}

TEST(CliEval, UnknownTaskListsValidNames) {
  REQUIRE_MODEL();
  RunResult r = run_bwla({"eval", shared_path(kModel), "--tasks", "nosuchtask", "--limit", "1",
                          "--data-dir", shared_path("data"), "-t", "1"});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, "nosuchtask")) << describe(r);
  for (const char* t : {"piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "lambada"})
    EXPECT_TRUE(contains(r.err, t)) << t << "\n" << describe(r);
}

// ---------------------------------------------------------------- make-random

TEST(CliMakeRandom, TinyQwen3RoundTripsThroughInfo) {
  TempDir tmp;
  const std::string out = tmp.file("qwen3");
  RunResult r =
      run_bwla({"make-random", "--preset", "tiny-qwen3", "-o", out, "--dtype", "f32", "-t", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  RunResult i = run_bwla({"info", out, "--json"});
  ASSERT_EQ(i.code, 0) << describe(i);
  json j = parse_stdout(i);
  EXPECT_EQ(j.value("architecture", ""), "Qwen3ForCausalLM") << j.dump();
  EXPECT_EQ(j.value("qk_norm", false), true) << j.dump();
  EXPECT_EQ(j.value("dtype", ""), "F32") << j.dump();
}

// Random checkpoints without tokenizer files quantize with random-token
// calibration (timing runs); text calibration names the missing tokenizer.
TEST(CliMakeRandom, QuantizeWithoutTokenizerUsesRandomTokens) {
  TempDir tmp;
  const std::string model = tmp.file("m"), out = tmp.file("q");
  ASSERT_EQ(run_bwla({"make-random", "--preset", "tiny-llama", "-o", model, "-t", "1"}).code, 0);
  RunResult bad = run_bwla({"quantize", model, "--method", "arb-x", "--abits", "6", "-o", out,
                            "--nsamples", "2", "--seqlen", "32", "-t", "1"});
  expect_clean_error(bad);
  EXPECT_TRUE(contains(bad.err, "tokenizer")) << describe(bad);
  EXPECT_FALSE(std::filesystem::exists(out));
  RunResult r = run_bwla({"quantize", model, "--method", "arb-x", "--abits", "6", "-o", out,
                          "--calib", "random-tokens", "--nsamples", "2", "--seqlen", "32", "-t",
                          "1", "--json", "-q"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_stdout(r);
  EXPECT_EQ(j["settings"]["calibration"]["source"], "random-tokens") << j.dump();
  EXPECT_GT(j.value("bits_per_weight", 0.0), 1.0) << j.dump();
  EXPECT_TRUE(std::filesystem::exists(out + "/config.json"));
}

TEST(CliMakeRandom, UnknownPresetIsAnError) {
  TempDir tmp;
  const std::string out = tmp.file("x");
  RunResult r = run_bwla({"make-random", "--preset", "no-such-preset", "-o", out});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, "no-such-preset")) << describe(r);
  EXPECT_TRUE(contains(r.err, "tiny-qwen3")) << "should list the presets\n" << describe(r);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(CliMakeRandom, UnknownDtypeIsAnError) {
  TempDir tmp;
  RunResult r =
      run_bwla({"make-random", "--preset", "tiny-qwen3", "-o", tmp.file("x"), "--dtype", "f8"});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, "f8")) << describe(r);
}

// ---------------------------------------------------------------- quantize

TEST(CliQuantize, UnknownMethodListsMethodsAndWritesNothing) {
  REQUIRE_MODEL();
  TempDir tmp;
  const std::string out = tmp.file("q");
  RunResult r = run_bwla({"quantize", shared_path(kModel), "--method", "nope", "-o", out, "-t", "1"});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, "nope")) << describe(r);
  for (const char* m : {"rtn-sign", "gptq", "billm", "arb", "bwla"})
    EXPECT_TRUE(contains(r.err, m)) << m << "\n" << describe(r);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".partial"));
}

TEST(CliQuantize, AbitsContradictsNoActQuant) {
  REQUIRE_MODEL();
  TempDir tmp;
  const std::string out = tmp.file("q");
  RunResult r = run_bwla({"quantize", shared_path(kModel), "--method", "rtn-sign", "--abits", "6",
                          "--no-act-quant", "-o", out, "-t", "1"});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, "--no-act-quant")) << describe(r);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".partial"));
}

TEST(CliQuantize, RankTooLargeIsRejectedBeforeAnyWork) {
  REQUIRE_MODEL();
  TempDir tmp;
  const std::string out = tmp.file("q");
  RunResult r = run_bwla({"quantize", shared_path(kModel), "--method", "bwla", "--rank", "64",
                          "-o", out, "-t", "1"});
  expect_clean_error(r);
  EXPECT_TRUE(contains(r.err, "--rank 64 is too large")) << describe(r);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".partial"));
  RunResult g = run_bwla({"quantize", shared_path(kModel), "--method", "arb-x", "--groups", "-o", out});
  EXPECT_NE(g.code, 0) << "--groups is bwla's switch\n" << describe(g);
  EXPECT_TRUE(contains(g.err, "--groups applies to --method bwla")) << describe(g);
  g = run_bwla({"quantize", shared_path(kModel), "--method", "bwla", "--groups", "--no-groups", "-o", out});
  EXPECT_NE(g.code, 0) << describe(g);
  g = run_bwla({"quantize", shared_path(kModel), "--method", "bwla", "--no-psp", "--rank", "2", "-o", out});
  EXPECT_NE(g.code, 0) << describe(g);
  EXPECT_TRUE(contains(g.err, "--no-psp contradicts")) << describe(g);
  EXPECT_FALSE(std::filesystem::exists(out));
}

// ---------------------------------------------------------------- --help

TEST(CliHelp, EverySubcommandPrintsUsage) {
  for (const char* sub : {"info", "generate", "ppl", "eval", "quantize", "make-random"}) {
    RunResult r = run_bwla({sub, "--help"});
    EXPECT_EQ(r.code, 0) << sub << "\n" << describe(r);
    const std::string all = r.out + r.err;
    EXPECT_TRUE(contains(all, "Usage") || contains(all, "usage")) << sub << "\n" << describe(r);
    EXPECT_TRUE(contains(all, "--json")) << sub << "\n" << describe(r);
    EXPECT_TRUE(contains(all, "--threads")) << sub << "\n" << describe(r);
  }
}

TEST(CliHelp, TopLevelHelpListsSubcommands) {
  RunResult r = run_bwla({"--help"});
  EXPECT_EQ(r.code, 0) << describe(r);
  for (const char* sub : {"info", "generate", "ppl", "eval", "quantize", "make-random"})
    EXPECT_TRUE(contains(r.out + r.err, sub)) << sub << "\n" << describe(r);
}

TEST(CliUsage, NoSubcommandOrUnknownOptionFails) {
  RunResult r = run_bwla({});
  EXPECT_TRUE(r.exited) << describe(r);
  EXPECT_NE(r.code, 0) << describe(r);
  RunResult u = run_bwla({"info", "--no-such-flag", "x"});
  EXPECT_TRUE(u.exited) << describe(u);
  EXPECT_NE(u.code, 0) << describe(u);
  EXPECT_TRUE(contains(u.err, "--no-such-flag")) << describe(u);
}

// ---------------------------------------------------------------- missing model

TEST(CliErrors, NonexistentModelDirectory) {
  TempDir tmp;
  const std::string dir = tmp.file("no_such_model");
  // A data file that exists, so ppl fails on the model directory.
  const std::string data = tmp.file("d.raw");
  std::ofstream(data) << "hello world\n";
  const std::vector<std::vector<std::string>> cmds = {
      {"info", dir},
      {"info", dir, "--json"},
      {"ppl", dir, "--data", data, "--ctx", "16", "-t", "1"},
      {"generate", dir, "-p", "hi", "-n", "2", "-t", "1"},
      {"eval", dir, "--tasks", "piqa", "--limit", "1", "-t", "1"},
  };
  for (auto& c : cmds) {
    RunResult r = run_bwla(c);
    SCOPED_TRACE(c[0]);
    expect_clean_error(r);
    EXPECT_TRUE(contains(r.err, dir)) << describe(r);
    if (c.size() > 2 && c[2] == "--json") {
      EXPECT_TRUE(r.out.empty()) << describe(r);
    }
  }
}

}  // namespace
