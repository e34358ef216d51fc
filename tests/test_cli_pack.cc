// `bwla pack` end to end: quantize stories260K (rtn-sign, tiny calibration),
// pack, and run ppl / generate / bench on the packed directory; bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "cli_run.h"
#include "io/json.h"
#include "shared_data.h"

using bwla::json;
using bwla::test::run_bwla;

namespace {

std::string model_dir() { return bwla::test::shared_path("models/stories260K-hf"); }
std::string wiki() { return bwla::test::shared_path("data/wikitext-2-raw/wiki.valid.raw"); }

struct Packed : ::testing::Test {
  static bwla::test::TempDir* td;
  static std::string setup_error;  // empty: quantize + pack succeeded
  static void SetUpTestSuite() {
    td = new bwla::test::TempDir;
    if (!bwla::test::shared_exists("models/stories260K-hf/model.safetensors")) return;
    auto q = run_bwla({"quantize", model_dir(), "--method", "rtn-sign", "--abits", "8", "--nsamples",
                       "4", "--seqlen", "64", "--shared", bwla::test::shared_dir(), "-o",
                       td->file("fq"), "-q", "-t", "1"});
    if (q.code != 0) {
      setup_error = "quantize: " + q.err;
      return;
    }
    auto p = run_bwla({"pack", td->file("fq"), "-o", td->file("packed"), "--json", "-t", "1"});
    if (p.code != 0) setup_error = "pack: " + p.err;
  }
  static void TearDownTestSuite() { delete td; }
  void SetUp() override {
    BWLA_REQUIRE_SHARED("models/stories260K-hf/model.safetensors");
    ASSERT_EQ(setup_error, "");
  }
};
bwla::test::TempDir* Packed::td = nullptr;
std::string Packed::setup_error;

double ppl_json(const std::string& dir) {
  auto r = run_bwla({"ppl", dir, "--data", wiki(), "--ctx", "128", "--max-windows", "3", "--json", "-q", "-t", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  return json::parse(r.out)["ppl"].get<double>();
}

TEST_F(Packed, PplMatchesFakeQuantAndForcedScalarIsa) {
  const double fq = ppl_json(td->file("fq")), pk = ppl_json(td->file("packed"));
  // Tolerances: tests/test_e2e_packed.cc (F16 scales; 1-bit stories260K is chaotic).
  EXPECT_NEAR(pk / fq, 1.0, 5e-2) << fq << " vs " << pk;
  setenv("BWLA_ISA", "scalar", 1);
  const double sc = ppl_json(td->file("packed"));
  unsetenv("BWLA_ISA");
  EXPECT_NEAR(sc / pk, 1.0, 1e-2) << pk << " vs scalar " << sc;
}

TEST_F(Packed, GenerateRuns) {
  auto r = run_bwla({"generate", td->file("packed"), "-p", "Once upon a time", "-n", "8", "--temp", "0", "-t", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
}

TEST_F(Packed, BenchReportsPackedSizes) {
  auto r = run_bwla({"bench", td->file("packed"), "--pp", "16", "--tg", "4", "--reps", "1", "--json",
                     "-t", "1", "--threads-list", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  for (const char* k : {"pp16_tps", "tg4_tps", "bits_per_weight", "model_bytes", "peak_rss_bytes"})
    ASSERT_TRUE(j.contains(k)) << k << " " << r.out;
  EXPECT_EQ(j["quant_method"], "bwla-packed");
  EXPECT_GT(j["bits_per_weight"].get<double>(), 1.0);
  EXPECT_LT(j["bits_per_weight"].get<double>(), 32.0);
  EXPECT_GT(j["packed_bytes"]["embeddings_norms_head"].get<double>(), 0.0);
  EXPECT_EQ(j["embedding_dtype"], "Q4");  // pack's default head dtype, for the (tied) table
  ASSERT_TRUE(j.contains("by_threads")) << r.out;
  EXPECT_GT(j["by_threads"]["1"]["tg4_tps"].get<double>(), 0.0);
}

TEST_F(Packed, BadInputFailsWithAMessage) {
  auto a = run_bwla({"pack", model_dir(), "-o", td->file("x1")});  // not quantized
  EXPECT_EQ(a.code, 1);
  EXPECT_NE(a.err.find("quantization_config"), std::string::npos) << a.err;
  auto b = run_bwla({"pack", td->file("packed"), "-o", td->file("x2")});  // already packed
  EXPECT_EQ(b.code, 1);
  EXPECT_NE(b.err.find("already packed"), std::string::npos) << b.err;
  auto c = run_bwla({"pack", td->file("fq"), "-o", td->file("x3"), "--scale-dtype", "bf16"});
  EXPECT_NE(c.code, 0);
  EXPECT_FALSE(std::filesystem::exists(td->file("x1")));
}

}  // namespace
