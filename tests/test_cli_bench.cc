// `bwla bench`: runs on the tiny stories260K model and checks the JSON report
// (no speed is asserted, only that the numbers exist and are positive).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "io/json.h"
#include "shared_data.h"

namespace {

struct RunResult {
  int status = -1;
  std::string out;
};

RunResult run(const std::string& args) {
  std::string cmd = std::string(BWLA_CLI_PATH) + " " + args + " 2>/dev/null";
  RunResult r;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  int st = pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST(CliBench, JsonReportOnTinyModel) {
  BWLA_REQUIRE_SHARED("models/stories260K-hf");
  const std::string dir = bwla::test::shared_path("models/stories260K-hf");
  auto r = run("bench " + dir + " --pp 16 --tg 4 --reps 1 --json -t 1");
  ASSERT_EQ(r.status, 0) << r.out;
  bwla::json j;
  ASSERT_NO_THROW(j = bwla::json::parse(r.out)) << r.out;
  ASSERT_TRUE(j.contains("pp16_tps")) << r.out;
  ASSERT_TRUE(j.contains("tg4_tps")) << r.out;
  EXPECT_GT(j["pp16_tps"].get<double>(), 0.0);
  EXPECT_GT(j["tg4_tps"].get<double>(), 0.0);
  EXPECT_GT(j["model_bytes"].get<double>(), 0.0);
  EXPECT_GT(j["param_bytes"].get<double>(), 0.0);
  EXPECT_GT(j["peak_rss_bytes"].get<double>(), 0.0);
  EXPECT_EQ(j["threads"].get<int>(), 1);
  // stories260K is an fp32 checkpoint.
  EXPECT_EQ(j["bits_per_weight"].get<double>(), 32.0);
}

TEST(CliBench, ZeroLengthSkipsThatTest) {
  BWLA_REQUIRE_SHARED("models/stories260K-hf");
  const std::string dir = bwla::test::shared_path("models/stories260K-hf");
  auto r = run("bench " + dir + " --pp 0 --tg 4 --reps 1 --json -t 1");
  ASSERT_EQ(r.status, 0) << r.out;
  bwla::json j;
  ASSERT_NO_THROW(j = bwla::json::parse(r.out)) << r.out;
  EXPECT_TRUE(j.contains("tg4_tps")) << r.out;
  for (auto& [k, v] : j.items()) EXPECT_NE(k.rfind("pp", 0), 0u) << k;
}

TEST(CliBench, MissingModelDirFails) {
  auto r = run("bench /nonexistent/bwla-bench-model --pp 4 --tg 2 --reps 1 --json -t 1");
  EXPECT_NE(r.status, 0);
}

TEST(CliBench, PromptLongerThanContextFails) {
  BWLA_REQUIRE_SHARED("models/stories260K-hf");
  const std::string dir = bwla::test::shared_path("models/stories260K-hf");
  auto r = run("bench " + dir + " --pp 100000 --tg 2 --reps 1 --json -t 1");
  EXPECT_NE(r.status, 0);
}

}  // namespace
