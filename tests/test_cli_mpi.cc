// mpirun -np N bwla quantize (docs/SCALING.md): the calibration segments are
// split across ranks, XᵀX is reduced over a fixed tree, each slot's linears
// are dealt out and broadcast; the output must be the bytes one process
// writes, for N = 1 (plain run), 2 and 4, for BWLA, a GPTQ baseline and ARB-RC, and
// when a run stopped under one N resumes under another. Skipped in builds
// without -DBWLA_MPI=ON. Ranks run one thread each on this machine
// (--oversubscribe: N may exceed the cores).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli_run.h"
#include "shared_data.h"

using bwla::test::run_bwla;
using bwla::test::run_command;
using bwla::test::slurp;

namespace {

const char* kModel = "models/stories260K-hf/model.safetensors";

#ifdef BWLA_MPIEXEC
constexpr bool kHaveMpi = true;
const char* kMpiexec = BWLA_MPIEXEC;
#else
constexpr bool kHaveMpi = false;
const char* kMpiexec = "";
#endif

std::vector<std::string> quantize_args(const std::vector<std::string>& extra, const std::string& out,
                                       int threads) {
  std::vector<std::string> a = {"quantize", bwla::test::shared_path("models/stories260K-hf"),
                                "--nsamples", "10", "--seqlen", "64", "--seed", "3",
                                "--shared", bwla::test::shared_dir(), "-o", out, "-q",
                                "-t", std::to_string(threads)};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

bwla::test::RunResult mpirun(int n, const std::vector<std::string>& bwla_args) {
  std::vector<std::string> argv = {kMpiexec, "--allow-run-as-root", "--oversubscribe", "-np",
                                   std::to_string(n), BWLA_CLI_PATH};
  argv.insert(argv.end(), bwla_args.begin(), bwla_args.end());
  return run_command(argv);
}

std::string single(const std::vector<std::string>& extra, const std::string& out) {
  auto r = run_bwla(quantize_args(extra, out, 2));
  EXPECT_EQ(r.code, 0) << bwla::test::describe(r);
  return r.code == 0 ? slurp(out + "/model.safetensors") : "";
}

TEST(Mpi, QuantizedBytesDoNotDependOnTheRankCount) {
  if (!kHaveMpi) GTEST_SKIP() << "built without -DBWLA_MPI=ON";
  BWLA_REQUIRE_SHARED(kModel);
  bwla::test::TempDir td;
  struct Case {
    const char* name;
    std::vector<std::string> args;
    std::vector<int> ranks;
  };
  // arb-rc: the column-group factors (P.rc_*) travel with each broadcast linear.
  const Case cases[] = {{"bwla", {}, {2, 4}},
                        {"gptq", {"--method", "gptq"}, {2}},
                        {"arb-rc", {"--method", "arb-rc", "--abits", "6"}, {2}}};
  for (const Case& c : cases) {
    const std::string one = single(c.args, td.file(std::string(c.name) + "_1"));
    ASSERT_FALSE(one.empty()) << c.name;
    for (int n : c.ranks) {
      const std::string out = td.file(std::string(c.name) + "_np" + std::to_string(n));
      auto r = mpirun(n, quantize_args(c.args, out, 1));
      ASSERT_EQ(r.code, 0) << c.name << " -np " << n << "\n" << bwla::test::describe(r);
      const std::string got = slurp(out + "/model.safetensors");
      EXPECT_TRUE(got == one) << c.name << ": -np " << n << " wrote " << got.size()
                              << " bytes, different from one process's " << one.size();
    }
  }
}

TEST(Mpi, ResumeUnderAnotherRankCount) {
  if (!kHaveMpi) GTEST_SKIP() << "built without -DBWLA_MPI=ON";
  BWLA_REQUIRE_SHARED(kModel);
  bwla::test::TempDir td;
  const std::string one = single({}, td.file("one"));
  ASSERT_FALSE(one.empty());
  const std::string out = td.file("staged");
  auto a = mpirun(2, quantize_args({"--stop-after", "2"}, out, 1));
  ASSERT_EQ(a.code, 0) << bwla::test::describe(a);
  EXPECT_NE(a.err.find("stopped after 2 layers"), std::string::npos) << a.err;
  auto b = mpirun(4, quantize_args({}, out, 1));
  ASSERT_EQ(b.code, 0) << bwla::test::describe(b);
  EXPECT_TRUE(slurp(out + "/model.safetensors") == one) << "resumed at -np 4 after -np 2";
}

// Other subcommands refuse to run as several ranks (each would write the
// same outputs).
TEST(Mpi, OnlyQuantizeRunsAcrossRanks) {
  if (!kHaveMpi) GTEST_SKIP() << "built without -DBWLA_MPI=ON";
  BWLA_REQUIRE_SHARED(kModel);
  auto r = mpirun(2, {"info", bwla::test::shared_path("models/stories260K-hf")});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("only `bwla quantize` runs across MPI ranks"), std::string::npos) << r.err;
}

}  // namespace
