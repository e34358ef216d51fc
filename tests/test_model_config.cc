// config.json and checkpoint validation: every bad input is one clear error.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/json.h"
#include "model/model.h"
#include "model/random_checkpoint.h"
#include "tmpdir.h"

using namespace bwla;

namespace {

std::string load_error(const std::string& dir) {
  try {
    Model::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    RandomCheckpointSpec s;
    s.preset = "tiny-llama";
    s.dtype = DType::F16;
    write_random_checkpoint(s, td.str());
    cfg = load_json_file(td.file("config.json"));
  }
  void write_cfg() { write_text_file_atomic(td.file("config.json"), cfg.dump()); }
  test::TempDir td;
  json cfg;
};

TEST_F(BadCheckpoint, LoadsWhenValid) { EXPECT_EQ(load_error(td.str()), ""); }

TEST_F(BadCheckpoint, UnsupportedArchitecture) {
  cfg["architectures"] = {"GPTNeoXForCausalLM"};
  write_cfg();
  EXPECT_NE(load_error(td.str()).find("unsupported architecture 'GPTNeoXForCausalLM'"),
            std::string::npos);
}

TEST_F(BadCheckpoint, MissingKey) {
  cfg.erase("hidden_size");
  write_cfg();
  EXPECT_NE(load_error(td.str()).find("missing required key 'hidden_size'"), std::string::npos);
}

TEST_F(BadCheckpoint, ShapeMismatchNamesTensorAndShapes) {
  cfg["intermediate_size"] = 170;
  write_cfg();
  std::string e = load_error(td.str());
  EXPECT_NE(e.find("model.layers.0.mlp.gate_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[160, 64]"), std::string::npos) << e;
  EXPECT_NE(e.find("[170, 64]"), std::string::npos) << e;
}

TEST_F(BadCheckpoint, MissingTensor) {
  cfg["num_hidden_layers"] = 3;  // the file has 2 layers
  write_cfg();
  EXPECT_NE(load_error(td.str()).find("missing tensor 'model.layers.2."), std::string::npos);
}

TEST_F(BadCheckpoint, WrongTypeAndBadJson) {
  cfg["num_attention_heads"] = "four";
  write_cfg();
  EXPECT_NE(load_error(td.str()).find("wrong type"), std::string::npos);
  write_text_file_atomic(td.file("config.json"), "{ nope");
  EXPECT_NE(load_error(td.str()).find("invalid JSON"), std::string::npos);
}

TEST_F(BadCheckpoint, HeadsMustDivide) {
  cfg["num_key_value_heads"] = 3;
  write_cfg();
  EXPECT_NE(load_error(td.str()).find("not a multiple"), std::string::npos);
}

TEST_F(BadCheckpoint, UnsupportedRopeScaling) {
  cfg["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  write_cfg();
  EXPECT_NE(load_error(td.str()).find("unsupported rope_scaling type 'yarn'"), std::string::npos);
}

TEST(Config, MissingDirectory) {
  EXPECT_NE(load_error("/nonexistent/model").find("cannot open"), std::string::npos);
}

TEST(Config, ParamCountMatchesTensors) {
  test::TempDir td;
  for (std::string p : {"tiny-llama", "tiny-qwen2", "tiny-qwen3"}) {
    RandomCheckpointSpec s;
    s.preset = p;
    write_random_checkpoint(s, td.str());
    ModelConfig c = ModelConfig::load(td.str());
    TensorStore st(td.str());
    long long n = 0;
    for (auto& name : st.names()) n += st.get(name).numel();
    EXPECT_EQ(c.n_params(), n) << p;
  }
}

}  // namespace
