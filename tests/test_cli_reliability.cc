// The command line never loses a user's data, never crashes on bad input and
// never runs a silently different model (issue: reliability). Every test works
// on a private copy of stories260K, so nothing under ../shared is ever an
// output path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_run.h"
#include "io/json.h"
#include "shared_data.h"
#include "tmpdir.h"

namespace {

namespace fs = std::filesystem;
using bwla::json;
using bwla::test::describe;
using bwla::test::RunResult;
using bwla::test::run_bwla;
using bwla::test::shared_path;
using bwla::test::slurp;
using bwla::test::TempDir;

const char* kModel = "models/stories260K-hf";
const char* kWiki = "data/wikitext-2-raw/wiki.test.raw";

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }
void expect_clean_error(const RunResult& r, const std::string& needle) {
  EXPECT_TRUE(r.exited) << "killed by a signal\n" << describe(r);
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(has(r.err, "error: ")) << describe(r);
  EXPECT_TRUE(has(r.err, needle)) << "expected '" << needle << "'\n" << describe(r);
  // One line: no stack dump, no multi-line abort text.
  EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 2) << describe(r);
}
void put(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Replaces the first `from` by `to` (same length) in a file: a corrupted name.
void flip_bytes(const std::string& path, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  std::string s = slurp(path);
  size_t at = s.find(from);
  ASSERT_NE(at, std::string::npos) << from << " not in " << path;
  s.replace(at, from.size(), to);
  std::ofstream(path, std::ios::binary) << s;
}

class Reliability : public ::testing::Test {
 protected:
  void SetUp() override {
    BWLA_REQUIRE_SHARED(kModel);
    BWLA_REQUIRE_SHARED("data/c4/c4_sample.jsonl");
    fs::copy(shared_path(kModel), model, fs::copy_options::recursive);
    for (auto& e : fs::directory_iterator(model))
      fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  std::vector<std::string> quantize_args(const std::string& out, const std::string& method = "rtn-sign") {
    return {"quantize", model, "--method", method, "--abits", "6", "--nsamples", "2",
            "--seqlen", "32", "--shared", bwla::test::shared_dir(), "-t", "1", "-q", "-o", out};
  }
  void edit_config(const std::string& dir, const std::function<void(json&)>& f) {
    json c = json::parse(slurp(dir + "/config.json"));
    f(c);
    put(dir + "/config.json", c.dump(2));
  }
  // BWLA W1A6 in its default layout (one plane), then packed.
  void quantize_and_pack(const std::string& q, const std::string& p, const char* scale_dtype) {
    auto qa = quantize_args(q, "bwla");
    qa.push_back("--no-groups");
    RunResult r = run_bwla(qa);
    ASSERT_EQ(r.code, 0) << describe(r);
    // PSP factors in the scale dtype: the tests below corrupt them as floats.
    r = run_bwla({"pack", q, "-o", p, "-q", "--scale-dtype", scale_dtype, "--psp-dtype", "scale"});
    ASSERT_EQ(r.code, 0) << describe(r);
  }
  std::string copy_model(const std::string& name) {
    fs::copy(model, td.file(name), fs::copy_options::recursive);
    return td.file(name);
  }
  TempDir td;
  std::string model = td.file("model");
};

// ------------------------------------------------------------ data loss

TEST_F(Reliability, QuantizeRefusesToReplaceWhatItDidNotWrite) {
  fs::create_directories(td.file("user"));
  put(td.file("user/thesis.tex"), "years of work");
  put(td.file("afile"), "a file");
  const std::string cfg_before = slurp(model + "/config.json");
  for (const std::string& out : {td.file("user"), td.file("afile"), model, td.str()}) {
    RunResult r = run_bwla(quantize_args(out));
    expect_clean_error(r, out);
  }
  EXPECT_EQ(slurp(td.file("user/thesis.tex")), "years of work");
  EXPECT_EQ(slurp(td.file("afile")), "a file");
  EXPECT_EQ(slurp(model + "/config.json"), cfg_before);
  EXPECT_TRUE(fs::exists(model + "/model.safetensors"));
  expect_clean_error(run_bwla(quantize_args("")), "empty");
  expect_clean_error(run_bwla(quantize_args(td.file("afile/sub"))), "not a directory");
}

TEST_F(Reliability, UnrelatedPartialAndTmpFoldersAreLeftAlone) {
  for (const char* suffix : {".partial", ".tmp"}) {
    const std::string out = td.file(std::string("q") + suffix[1]);
    fs::create_directories(out + suffix);
    put(out + suffix + "/mine", "user");
    RunResult r = run_bwla(quantize_args(out));
    expect_clean_error(r, suffix);
    EXPECT_EQ(slurp(out + suffix + "/mine"), "user");
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(Reliability, OwnOutputsAreReplacedAndPackRefusesItsInputsParent) {
  const std::string q = td.file("runs/q");
  ASSERT_EQ(run_bwla(quantize_args(q)).code, 0);
  RunResult again = run_bwla(quantize_args(q));
  ASSERT_EQ(again.code, 0) << describe(again);  // bwla's own output: replaced
  EXPECT_FALSE(fs::exists(q + ".tmp"));
  EXPECT_FALSE(fs::exists(q + ".partial"));
  expect_clean_error(run_bwla({"pack", q, "-o", td.file("runs"), "-q"}), "input");
  expect_clean_error(run_bwla({"pack", q, "-o", q, "-q"}), "input");
  EXPECT_TRUE(fs::exists(q + "/model.safetensors"));
  const std::string p = td.file("p");
  ASSERT_EQ(run_bwla({"pack", q, "-o", p, "-q"}).code, 0);
  ASSERT_EQ(run_bwla({"pack", q, "-o", p, "-q"}).code, 0);
  fs::create_directories(td.file("pu"));
  put(td.file("pu/x"), "user");
  expect_clean_error(run_bwla({"pack", q, "-o", td.file("pu"), "-q"}), "did not write");
  EXPECT_EQ(slurp(td.file("pu/x")), "user");
}

TEST_F(Reliability, ExportAndEvalFilesReplaceOnlyTheirOwn) {
  put(td.file("user.gguf"), "not a gguf of ours");
  expect_clean_error(run_bwla({"export-gguf", model, "-o", td.file("user.gguf"), "-q"}),
                     "not written by bwla");
  EXPECT_EQ(slurp(td.file("user.gguf")), "not a gguf of ours");
  ASSERT_EQ(run_bwla({"export-gguf", model, "-o", td.file("m.gguf"), "-q"}).code, 0);
  ASSERT_EQ(run_bwla({"export-gguf", model, "-o", td.file("m.gguf"), "-q"}).code, 0);
  expect_clean_error(run_bwla({"export-gguf", model, "-o", model, "-q"}), "input");

  BWLA_REQUIRE_SHARED("data/piqa/valid.jsonl");
  put(td.file("notes.json"), "{\"mine\": 1}");
  const std::vector<std::string> ev = {"eval", model, "--tasks", "piqa", "--limit", "3",
                                       "--data-dir", shared_path("data"), "-q", "-t", "1",
                                       "--json-out"};
  auto with = [&](const std::string& f) {
    auto a = ev;
    a.push_back(f);
    return run_bwla(a);
  };
  expect_clean_error(with(td.file("notes.json")), "not written by bwla");
  EXPECT_EQ(slurp(td.file("notes.json")), "{\"mine\": 1}");
  ASSERT_EQ(with(td.file("r.json")).code, 0);
  ASSERT_EQ(with(td.file("r.json")).code, 0);
  EXPECT_EQ(json::parse(slurp(td.file("r.json"))).value("written_by", ""), "bwla");
}

// ------------------------------------------------------------ aborts

TEST_F(Reliability, FilesystemAndJsonTypeErrorsAreOneLineErrors) {
  expect_clean_error(run_bwla(quantize_args("/proc/bwla-test-out")), "/proc/bwla-test-out");
  for (const char* field : {R"({"architectures": [5]})", R"({"bos_token_id": ["a"]})",
                            R"({"num_hidden_layers": 4.9})", R"({"num_hidden_layers": 4294967299})",
                            R"({"hidden_size": 4294967360})", R"({"vocab_size": -512})",
                            R"({"rope_theta": 0})", R"({"rms_norm_eps": -1})",
                            R"({"hidden_act": "gelu"})",
                            R"({"rope_scaling": {"rope_type": "llama3", "factor": 0}})"}) {
    const std::string m = copy_model("bad");
    const json patch = json::parse(field);
    edit_config(m, [&](json& c) { c.update(patch); });
    RunResult r = run_bwla({"ppl", m, "--data", shared_path(kWiki), "--max-windows", "1", "-q"});
    expect_clean_error(r, "config.json");
    EXPECT_TRUE(has(r.err, patch.begin().key())) << field << "\n" << describe(r);
    fs::remove_all(m);
  }
}

TEST_F(Reliability, DeepNestingAndHugeThreadCountsDoNotCrash) {
  const std::string m = copy_model("deep");
  std::string deep;
  for (int i = 0; i < 200000; ++i) deep += "{\"a\":";
  deep += "1";
  for (int i = 0; i < 200000; ++i) deep += "}";
  put(m + "/config.json", deep);
  expect_clean_error(run_bwla({"info", m}), "nested deeper");
  RunResult r = run_bwla({"generate", model, "-n", "3", "-t", "100000", "-q"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(has(r.err, "capped")) << describe(r);
}

// ------------------------------------------------------------ a different model

TEST_F(Reliability, TensorsTheConfigDoesNotUseAreAnError) {
  const std::string m = copy_model("fewer");
  edit_config(m, [](json& c) { c["num_hidden_layers"] = 3; });
  RunResult r = run_bwla({"ppl", m, "--data", shared_path(kWiki), "--max-windows", "1", "-q"});
  expect_clean_error(r, "num_hidden_layers 3");
  r = run_bwla(quantize_args(td.file("qf")));  // the original copy still works
  EXPECT_EQ(r.code, 0) << describe(r);
  // quantize refuses before any work, too.
  auto a = quantize_args(td.file("qf2"));
  a[1] = m;
  expect_clean_error(run_bwla(a), "num_hidden_layers 3");
}

TEST_F(Reliability, ACorruptedTensorNameIsAnErrorInBothFormats) {
  const std::string q = td.file("q"), p = td.file("p");
  ASSERT_NO_FATAL_FAILURE(quantize_and_pack(q, p, "f32"));
  const std::vector<std::pair<std::string, std::string>> flips = {
      {"layers.0.self_attn.q_proj.okt_r2", "layers.0.self_attn.q_proj.okt_s2"},
      {"layers.0.self_attn.q_proj.okt_r1", "layers.0.self_attn.q_proj.okt_s1"},
      {"layers.0.self_attn.q_proj.psp_b", "layers.0.self_attn.q_proj.psp_c"},
      {"layers.0.self_attn.q_proj.psp_a", "layers.0.self_attn.q_proj.psp_x"}};
  for (const std::string& dir : {q, p}) {
    for (auto& [from, to] : flips) {
      const std::string c = td.file("c");
      fs::remove_all(c);
      fs::copy(dir, c, fs::copy_options::recursive);
      flip_bytes(c + "/model.safetensors", from, to);
      RunResult r = run_bwla({"ppl", c, "--data", shared_path(kWiki), "--max-windows", "1", "-q"});
      EXPECT_TRUE(r.exited && r.code == 1) << dir << " " << from << "\n" << describe(r);
      EXPECT_TRUE(has(r.err, "q_proj")) << dir << " " << from << "\n" << describe(r);
    }
  }
}

// A float32 value in a tensor's data, found through the header.
void poison_first_float(const std::string& file, const std::string& tensor) {
  std::string s = slurp(file);
  uint64_t hl;
  std::memcpy(&hl, s.data(), 8);
  json h = json::parse(s.substr(8, hl));
  ASSERT_TRUE(h.contains(tensor)) << tensor;
  ASSERT_EQ(h[tensor]["dtype"], "F32");
  const size_t off = 8 + hl + h[tensor]["data_offsets"][0].get<size_t>();
  const float nan = std::nanf("");
  std::memcpy(&s[off], &nan, 4);
  std::ofstream(file, std::ios::binary) << s;
}

TEST_F(Reliability, NonFiniteFactorsAndConfigValuesAreRefused) {
  const std::string q = td.file("q"), p = td.file("p");
  ASSERT_NO_FATAL_FAILURE(quantize_and_pack(q, p, "f32"));
  for (const std::string& t : {std::string("model.layers.1.mlp.up_proj.psp_a"),
                               std::string("model.layers.1.mlp.up_proj.okt_r1")}) {
    for (const std::string& dir : {q, p}) {
      const std::string c = td.file("nan");
      fs::remove_all(c);
      fs::copy(dir, c, fs::copy_options::recursive);
      poison_first_float(c + "/model.safetensors", t);
      RunResult r = run_bwla({"ppl", c, "--data", shared_path(kWiki), "--max-windows", "1", "-q"});
      expect_clean_error(r, t);
      EXPECT_TRUE(has(r.err, "non-finite")) << describe(r);
    }
  }
}

TEST_F(Reliability, PackedConfigFieldsMustMatchTheTensors) {
  const std::string q = td.file("q"), p = td.file("p");
  ASSERT_NO_FATAL_FAILURE(quantize_and_pack(q, p, "f16"));
  const std::vector<std::pair<std::string, json>> bad = {
      {"weight_layout", "bitplanes-u32be"}, {"scale_dtype", "F32"}, {"head_dtype", "Q8"},
      {"psp_dtype", "I8"},                  {"max_planes", 2},      {"format_version", "3"},
      {"transform", "none"},                {"psp", false}};
  for (auto& [key, value] : bad) {
    const std::string c = td.file("pc");
    fs::remove_all(c);
    fs::copy(p, c, fs::copy_options::recursive);
    edit_config(c, [&](json& j) { j["quantization_config"][key] = value; });
    RunResult r = run_bwla({"ppl", c, "--data", shared_path(kWiki), "--max-windows", "1", "-q"});
    expect_clean_error(r, key);
  }
  // The fake-quant format: the config promises OKT and PSP for every linear.
  for (auto& [key, value] : std::vector<std::pair<std::string, json>>{{"transform", "hadamard"}, {"psp", false}}) {
    const std::string c = td.file("qc");
    fs::remove_all(c);
    fs::copy(q, c, fs::copy_options::recursive);
    edit_config(c, [&](json& j) { j["quantization_config"][key] = value; });
    expect_clean_error(run_bwla({"ppl", c, "--data", shared_path(kWiki), "--max-windows", "1", "-q"}),
                       key);
  }
}

TEST_F(Reliability, LoadTimeConsistencyChecks) {
  // A tokenizer with more ids than the model has embedding rows.
  const std::string m = copy_model("tok");
  json tj = json::parse(slurp(m + "/tokenizer.json"));
  tj["added_tokens"].push_back({{"id", 512}, {"content", "<extra>"}, {"single_word", false},
                                {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                                {"special", true}});
  put(m + "/tokenizer.json", tj.dump());
  expect_clean_error(run_bwla({"generate", m, "-p", "Lily", "-n", "2", "-q"}), "vocab_size is 512");
  BWLA_REQUIRE_SHARED("data/piqa/valid.jsonl");
  expect_clean_error(run_bwla({"eval", model, "--tasks", "piqa", "--limit", "2", "--ctx", "4096",
                               "--data-dir", shared_path("data"), "-q"}),
                     "max_position_embeddings");
  // A task with no items is an error, not an accuracy of 0.
  fs::create_directories(td.file("data/piqa"));
  put(td.file("data/piqa/valid.jsonl"), "");
  put(td.file("data/piqa/valid-labels.lst"), "");
  RunResult r = run_bwla({"eval", model, "--tasks", "piqa", "--data-dir", td.file("data"), "-q"});
  EXPECT_TRUE(r.exited && r.code == 1) << describe(r);
  EXPECT_TRUE(has(r.err, "piqa")) << describe(r);
}

TEST_F(Reliability, ResumeIsKeyedOnTheInputsContent) {
  const std::string q = td.file("q");
  auto a = quantize_args(q);
  a.erase(std::find(a.begin(), a.end(), "-q"));
  a.insert(a.end(), {"--stop-after", "2"});
  ASSERT_EQ(run_bwla(a).code, 0);
  ASSERT_TRUE(fs::exists(q + ".partial"));
  // Same path, edited weights: the partial layers must not be reused.
  std::string st = slurp(model + "/model.safetensors");
  st[st.size() - 1] ^= 0x01;
  std::ofstream(model + "/model.safetensors", std::ios::binary) << st;
  RunResult r = run_bwla(a);
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(has(r.err, "discarding")) << describe(r);
  // Unchanged inputs: resumed, not discarded.
  r = run_bwla(a);
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(has(r.err, "discarding")) << describe(r);
}

// ------------------------------------------------------------ visible bugs

TEST_F(Reliability, GenerateKeepsTheSpaceAfterThePrompt) {
  RunResult r = run_bwla({"generate", model, "-p", "Lily went", "-n", "6", "--temp", "0", "-t",
                          "1", "--json", "-q"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string text = json::parse(r.out).value("text", "");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text[0], ' ') << "continuation '" << text << "' lost its leading space";
  r = run_bwla({"generate", model, "-p", "Lily went", "-n", "6", "--temp", "0", "-t", "1", "-q"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.rfind("Lily went" + text, 0), 0u) << r.out;
}

TEST_F(Reliability, BadOptionsFailBeforeAnyWork) {
  BWLA_REQUIRE_SHARED(kWiki);
  const std::vector<std::vector<std::string>> bad = {
      {"--psp-iters", "0"}, {"--kappa", "-1"}, {"--block-size", "0"}, {"--group-size", "-3"},
      {"--damp", "-1"},     {"--ppl-data", td.file("missing.txt")},
      {"--ppl-data", shared_path(kWiki), "--ppl-ctx", "100000"}};
  for (auto& extra : bad) {
    const std::string out = td.file("late");
    auto a = quantize_args(out, "bwla");
    a.insert(a.end(), extra.begin(), extra.end());
    RunResult r = run_bwla(a);
    expect_clean_error(r, extra[extra.size() - 2]);
    EXPECT_FALSE(fs::exists(out + ".partial")) << extra[0];
    EXPECT_FALSE(fs::exists(out)) << extra[0];
  }
}

}  // namespace
