// config.json and checkpoint validation: every bad input is one clear error.
#include <gtest/gtest.h>

#include <filesystem>

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
  EXPECT_NE(load_error(td.str()).find("'num_attention_heads' must be an integer"), std::string::npos);
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

TEST_F(BadCheckpoint, IntegersAreExactNeverTruncatedOrWrapped) {
  // Before: 4.9 ran 4 layers and 2^32 + 3 ran 3.
  for (json v : {json(1.9), json(4294967299LL), json(-1), json("2")}) {
    cfg["num_hidden_layers"] = v;
    write_cfg();
    std::string e = load_error(td.str());
    EXPECT_NE(e.find("'num_hidden_layers'"), std::string::npos) << v.dump() << ": " << e;
  }
  cfg["num_hidden_layers"] = 2.0;  // an integral float is the integer
  write_cfg();
  EXPECT_EQ(load_error(td.str()), "");
  for (const char* key : {"hidden_size", "vocab_size", "intermediate_size"}) {
    json c0 = cfg;
    cfg[key] = (1LL << 32) + (long long)cfg[key].get<int>();
    write_cfg();
    EXPECT_NE(load_error(td.str()).find(key), std::string::npos) << key;
    cfg = c0;
  }
}

TEST_F(BadCheckpoint, OutOfRangeValuesAndUnappliedFieldsAreErrors) {
  const std::vector<std::pair<std::string, json>> bad = {
      {"rope_theta", 0.0},   {"rope_theta", -10000.0}, {"rms_norm_eps", -1e-6},
      {"rms_norm_eps", 0.0}, {"hidden_act", "gelu"},   {"tie_word_embeddings", "yes"},
      {"bos_token_id", json::array({"a"})}};
  for (auto& [k, v] : bad) {
    json c0 = cfg;
    cfg[k] = v;
    write_cfg();
    std::string e = load_error(td.str());
    EXPECT_NE(e.find(k), std::string::npos) << k << "=" << v.dump() << ": " << e;
    cfg = c0;
  }
  cfg["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 0.0}};
  write_cfg();
  EXPECT_NE(load_error(td.str()).find("factor"), std::string::npos);
  cfg["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                         {"high_freq_factor", 4.0}};
  write_cfg();
  EXPECT_NE(load_error(td.str()).find("high_freq_factor"), std::string::npos);
}

TEST_F(BadCheckpoint, TensorsTheConfigDoesNotUseAreErrors) {
  // A 2-layer file read as 1 layer: before, layer 1 was silently dropped.
  cfg["num_hidden_layers"] = 1;
  write_cfg();
  std::string e = load_error(td.str());
  EXPECT_NE(e.find("model.layers.1."), std::string::npos) << e;
  EXPECT_NE(e.find("num_hidden_layers 1"), std::string::npos) << e;
  // Any other tensor nobody reads.
  cfg["num_hidden_layers"] = 2;
  write_cfg();
  {
    TensorStore st(td.str());
    SafeTensorsWriter w;
    for (auto& n : st.names()) {
      const TensorView& t = st.get(n);
      w.add(n, t.dtype, t.shape, t.data, t.nbytes);
    }
    float x = 1;
    w.add_f32("model.extra_scale", {1}, &x);
    w.write(td.file("model2.safetensors"));
  }
  std::filesystem::rename(td.file("model2.safetensors"), td.file("model.safetensors"));
  e = load_error(td.str());
  EXPECT_NE(e.find("not used"), std::string::npos) << e;
  EXPECT_NE(e.find("model.extra_scale"), std::string::npos) << e;
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
