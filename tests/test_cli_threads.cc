// Thread-count independence (docs/GUARANTEES.md): the same model, seed and
// options give the same model.safetensors bytes at -t 1, 2 and 3, for BWLA
// and the baselines whose 1- vs 2-thread results used to differ; a packed
// model's bytes, and the perplexity of a fake-quant and of a packed model, do
// not change with the thread count either. Small calibration (4 x 64 tokens)
// so every run takes about a second.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli_run.h"
#include "io/json.h"
#include "shared_data.h"

using bwla::json;
using bwla::test::run_bwla;
using bwla::test::slurp;

namespace {

const char* kModel = "models/stories260K-hf/model.safetensors";
std::string model_dir() { return bwla::test::shared_path("models/stories260K-hf"); }

// Quantizes stories260K with `args` at `threads` threads into `out`; returns
// the model.safetensors bytes (empty on failure, with the error reported).
std::string quantize(const std::vector<std::string>& args, int threads, const std::string& out,
                     int nsamples = 4, int seqlen = 64) {
  std::vector<std::string> cmd = {"quantize", model_dir(), "--wbits", "1", "--abits", "6",
                                  "--nsamples", std::to_string(nsamples), "--seqlen",
                                  std::to_string(seqlen), "--seed", "0",
                                  "--shared", bwla::test::shared_dir(), "-o", out, "-q",
                                  "--no-resume", "-t", std::to_string(threads)};
  cmd.insert(cmd.end(), args.begin(), args.end());
  auto r = run_bwla(cmd);
  EXPECT_EQ(r.code, 0) << r.err;
  if (r.code != 0) return "";
  return slurp(out + "/model.safetensors");
}

struct Method {
  const char* name;
  std::vector<std::string> args;
  std::vector<int> threads;  // compared against the 1-thread bytes
};

TEST(Threads, QuantizedBytesDoNotDependOnThreadCount) {
  BWLA_REQUIRE_SHARED(kModel);
  bwla::test::TempDir td;
  const Method methods[] = {
      {"bwla", {"--method", "bwla"}, {2, 3}},  // one plane + sign refinement
      {"bwla-no-psp", {"--method", "bwla", "--no-psp"}, {2}},
      {"bwla-groups", {"--method", "bwla", "--groups"}, {2}},
      {"gptq", {"--method", "gptq"}, {2}},
      {"arb-x", {"--method", "arb-x"}, {2}},
  };
  for (const Method& m : methods) {
    const std::string one = quantize(m.args, 1, td.file(std::string(m.name) + "_t1"));
    ASSERT_FALSE(one.empty()) << m.name;
    for (int t : m.threads) {
      const std::string other = quantize(m.args, t, td.file(std::string(m.name) + "_t" + std::to_string(t)));
      // Not EXPECT_EQ on the strings: a mismatch would print megabytes.
      EXPECT_TRUE(other == one) << m.name << ": -t " << t << " wrote different bytes than -t 1 ("
                                << other.size() << " vs " << one.size() << " bytes)";
    }
  }
}

// Recomputing the o_proj / down_proj inputs per chunk (the memory-bounded
// path of 7B-shape calibrations) writes the bytes keeping them does. 12
// segments: two forward chunks (8 + 4), so the recomputed rows are not all in
// the first chunk.
TEST(Threads, RecomputedActivationsGiveTheKeptBytes) {
  BWLA_REQUIRE_SHARED(kModel);
  bwla::test::TempDir td;
  auto run = [&](const char* keep) {
    return quantize({"--method", "bwla", "--keep-activations", keep}, 2, td.file(keep), 12, 32);
  };
  const std::string kept = run("yes");
  ASSERT_FALSE(kept.empty());
  const std::string recomputed = run("no");
  EXPECT_TRUE(recomputed == kept) << "--keep-activations no wrote different bytes ("
                                  << recomputed.size() << " vs " << kept.size() << ")";
  auto bad = run_bwla({"quantize", model_dir(), "-o", td.file("bad"), "--keep-activations", "maybe"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--keep-activations"), std::string::npos) << bad.err;
}

json ppl(const std::string& dir, int threads) {
  auto r = run_bwla({"ppl", dir, "--data", bwla::test::shared_path("data/wikitext-2-raw/wiki.valid.raw"),
                     "--ctx", "128", "--max-windows", "3", "--json", "-q", "-t", std::to_string(threads)});
  EXPECT_EQ(r.code, 0) << r.err;
  return r.code == 0 ? json::parse(r.out) : json();
}

// The runtime: fake-quant forward (activation quantization, fixed-piece
// products) and the packed kernels give the same NLL, bit for bit.
TEST(Threads, PackAndPerplexityDoNotDependOnThreadCount) {
  BWLA_REQUIRE_SHARED(kModel);
  BWLA_REQUIRE_SHARED("data/wikitext-2-raw/wiki.valid.raw");
  bwla::test::TempDir td;
  // --no-groups: the layout `pack` stores.
  ASSERT_FALSE(quantize({"--method", "bwla", "--no-groups"}, 1, td.file("fq")).empty());
  for (int t : {1, 2}) {
    auto p = run_bwla({"pack", td.file("fq"), "-o", td.file("packed" + std::to_string(t)), "-q",
                       "--psp-dtype", "i8", "--head-dtype", "q8", "-t", std::to_string(t)});
    ASSERT_EQ(p.code, 0) << p.err;
  }
  EXPECT_TRUE(slurp(td.file("packed1/model.safetensors")) == slurp(td.file("packed2/model.safetensors")));
  for (const std::string& dir : {td.file("fq"), td.file("packed1")}) {
    const json a = ppl(dir, 1), b = ppl(dir, 2);
    ASSERT_TRUE(a.contains("mean_nll") && b.contains("mean_nll")) << dir;
    EXPECT_EQ(a["mean_nll"].get<double>(), b["mean_nll"].get<double>()) << dir;
  }
}

}  // namespace
