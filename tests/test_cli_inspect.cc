// `bwla inspect`: JSON statistics of one linear before/after OKT and PSP,
// PNG plots (when built with PLplot) and errors for bad arguments.
#include <gtest/gtest.h>
#include <sys/wait.h>

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
using bwla::test::shared_dir;
using bwla::test::shared_path;

const char* kModel = "models/stories260K-hf";

using CliRun = bwla::test::RunResult;
using bwla::test::describe;
using bwla::test::run_bwla;
using bwla::test::slurp;


std::vector<std::string> base_args(const std::string& linear) {
  return {"inspect", shared_path(kModel), "--layer", "1", "--linear", linear, "--shared",
          shared_dir(), "--nsamples", "4", "--seqlen", "64", "--okt-iters", "6", "-t", "1"};
}

TEST(CliInspect, JsonStatisticsShowOktHelps) {
  BWLA_REQUIRE_SHARED(kModel);
  BWLA_REQUIRE_SHARED("data/c4");
  auto args = base_args("gate_proj");
  args.push_back("--json");
  CliRun r = run_bwla(args);
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << describe(r);
  EXPECT_EQ(j.value("layer", -1), 1);
  EXPECT_EQ(j.value("linear", ""), "gate_proj");
  EXPECT_EQ(j["shape"], json::array({172, 64}));
  EXPECT_FALSE(j.value("quantized", true));
  for (const char* stage : {"before_okt", "after_okt", "after_psp"}) {
    ASSERT_TRUE(j["weights"].contains(stage)) << stage;
    for (const char* k : {"kurtosis", "bimodality", "skewness", "near_centre_mass"})
      EXPECT_TRUE(j["weights"][stage].contains(k)) << stage << "." << k;
    ASSERT_TRUE(j["binarization_error"].contains(stage)) << stage;
  }
  const json& b = j["binarization_error"];
  EXPECT_LE(b["after_okt"].get<double>(), b["before_okt"].get<double>() + 1e-9) << b.dump();
  EXPECT_LE(b["after_psp"].get<double>(), b["after_okt"].get<double>() + 1e-6) << b.dump();
  EXPECT_GT(b["before_okt"].get<double>(), 0.0);
  // OKT's double bell: bimodality rises.
  EXPECT_GT(j["weights"]["after_okt"]["bimodality"].get<double>(),
            j["weights"]["before_okt"]["bimodality"].get<double>());
  for (const char* side : {"before", "after"})
    for (const char* k : {"max_over_rms", "worst_max_over_rms", "kurtosis"})
      EXPECT_TRUE(j["activations"][side].contains(k)) << side << "." << k;
  EXPECT_EQ(j["activations"]["tokens"].get<long>(), 4 * 64);
  EXPECT_EQ(j["psp"]["rank"].get<int>(), 1);  // 0.005·64 rounds to 0, at least 1
  for (const char* k : {"w", "residual", "final_residual"}) {
    ASSERT_TRUE(j["singular_values"][k].is_array()) << k;
    EXPECT_FALSE(j["singular_values"][k].empty()) << k;
  }
  // Singular values come sorted.
  const json& sw = j["singular_values"]["w"];
  for (size_t i = 1; i < sw.size(); ++i) EXPECT_LE(sw[i].get<double>(), sw[i - 1].get<double>());
}

TEST(CliInspect, BadLinearListsValidNames) {
  BWLA_REQUIRE_SHARED(kModel);
  CliRun r = run_bwla(base_args("qkv_proj"));
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_LT(r.code, 128) << "crashed\n" << describe(r);
  for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
    EXPECT_NE(r.err.find(n), std::string::npos) << n << "\n" << describe(r);
  EXPECT_NE(r.err.find("qkv_proj"), std::string::npos) << describe(r);
}

TEST(CliInspect, BadLayerIsCleanError) {
  BWLA_REQUIRE_SHARED(kModel);
  BWLA_REQUIRE_SHARED("data/c4");
  auto args = base_args("q_proj");
  args[3] = "99";
  CliRun r = run_bwla(args);
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.err.find("--layer 99"), std::string::npos) << describe(r);
}

TEST(CliInspect, PlotsOrClearError) {
  BWLA_REQUIRE_SHARED(kModel);
  BWLA_REQUIRE_SHARED("data/c4");
  bwla::test::TempDir tmp;
  auto args = base_args("q_proj");
  args.insert(args.end(), {"--plots", tmp.str(), "--json"});
  CliRun r = run_bwla(args);
#ifdef BWLA_HAVE_PLPLOT
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << describe(r);
  ASSERT_EQ(j["plots"].size(), 3u) << describe(r);
  for (auto& p : j["plots"]) {
    std::string data = slurp(p.get<std::string>());
    ASSERT_GT(data.size(), 8u) << p;
    EXPECT_EQ(data.substr(1, 3), "PNG") << p;
  }
#else
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.err.find("PLplot"), std::string::npos) << describe(r);
#endif
}

}  // namespace
