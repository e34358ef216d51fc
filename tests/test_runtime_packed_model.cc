// The packed runtime on its own: this test links bwla_runtime (and what is
// below it) only, so neither Eigen nor the quantizers. A packed stories260K
// that the bwla binary wrote loads with load_packed_model, every decoder
// linear is a PackedLinear, and greedy decoding gives the token ids that
// `bwla generate` (which loads through format/model_loader.h) printed.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "cli_run.h"
#include "core/error.h"
#include "io/json.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/sampling.h"
#include "runtime/packed_format.h"
#include "runtime/packed_linear.h"
#include "shared_data.h"

using namespace bwla;
using namespace bwla::test;

namespace {

// The greedy continuation of `prompt` (n tokens) and the first step's logits.
std::vector<int> greedy(const Model& m, const std::vector<int>& prompt, int n,
                        std::vector<float>* first_logits) {
  KVCache cache(m.cfg, (int)prompt.size() + n + 1);
  std::vector<float> logits(m.cfg.vocab);
  forward_tokens(m, prompt.data(), (int)prompt.size(), cache, logits.data(), false);
  if (first_logits) *first_logits = logits;
  std::vector<int> out;
  for (int i = 0; i < n; ++i) {
    int next = argmax(logits.data(), m.cfg.vocab);
    out.push_back(next);
    forward_tokens(m, &next, 1, cache, logits.data(), false);
  }
  return out;
}

// The quantized (q) and packed (p) stories260K, written once by the bwla
// binary for the tests below; a failure is reported by every test that needs
// them (an assertion in SetUpTestSuite would show as a skip under ctest).
struct Made {
  TempDir dir;
  std::string error;  // empty when both were written
};
const Made& made() {
  // Destroyed at exit, which removes the directory.
  static const std::unique_ptr<Made> m = [] {
    auto r = std::make_unique<Made>();
    const std::string src = shared_path("models/stories260K-hf");
    RunResult q = run_bwla({"quantize", src, "-o", r->dir.file("q"), "--shared", shared_dir(),
                            "--nsamples", "16", "--seqlen", "128", "-q", "-t", "2"});
    if (q.code != 0) {
      r->error = "quantize: " + describe(q);
      return r;
    }
    RunResult p = run_bwla({"pack", r->dir.file("q"), "-o", r->dir.file("p"), "-q"});
    if (p.code != 0) r->error = "pack: " + describe(p);
    return r;
  }();
  return *m;
}

class PackedRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    BWLA_REQUIRE_SHARED("models/stories260K-hf");
    ASSERT_EQ(made().error, "");
  }
  static std::string file(const std::string& name) { return made().dir.file(name); }
};

TEST_F(PackedRuntime, GreedyTokensMatchTheCli) {
  const int n = 24;
  RunResult g = run_bwla({"generate", file("p"), "-p", "Once upon a time there was", "-n",
                          std::to_string(n), "--temp", "0", "--json", "-q"});
  ASSERT_EQ(g.code, 0) << describe(g);
  const json j = json::parse(g.out);
  const std::vector<int> prompt = j.at("prompt_ids").get<std::vector<int>>();
  const std::vector<int> cli = j.at("token_ids").get<std::vector<int>>();
  ASSERT_GT(prompt.size(), 1u);
  ASSERT_FALSE(cli.empty());

  auto m = load_packed_model(file("p"));
  for (int l = 0; l < m->cfg.n_layers; ++l)
    for (int id = 0; id < kNumLinears; ++id)
      EXPECT_NE(dynamic_cast<const PackedLinear*>(m->layers[l].lin[id].get()), nullptr)
          << "layer " << l << " linear " << id;
  std::vector<float> packed_logits;
  const std::vector<int> ids = greedy(*m, prompt, (int)cli.size(), &packed_logits);
  EXPECT_EQ(ids, cli);

  // The packed model is not the fp32 one it came from.
  auto fp = Model::load(shared_path("models/stories260K-hf"));
  std::vector<float> fp_logits;
  greedy(*fp, prompt, 1, &fp_logits);
  double diff = 0;
  for (size_t i = 0; i < fp_logits.size(); ++i)
    diff = std::max(diff, (double)std::fabs(fp_logits[i] - packed_logits[i]));
  EXPECT_GT(diff, 1e-2);
}

TEST_F(PackedRuntime, RefusesOtherStorage) {
  for (const std::string& d : {shared_path("models/stories260K-hf"), file("q")}) {
    try {
      load_packed_model(d);
      FAIL() << d << " loaded as a packed model";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("load_model"), std::string::npos) << e.what();
    }
  }
  // And the fp32 loader refuses the packed model (its 4-bit head included)
  // by its config, naming the loader to use.
  for (const std::string& d : {file("p"), file("q")}) {
    try {
      Model::load(d);
      FAIL() << d << " loaded as an fp32 checkpoint";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("quantization_config"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("load_model"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
