// The fp32 forward's golden output: stories260K's greedy text from the
// model card, decoded by the real tokenizer (model and tokenizer together, so
// it lives with evaluation, which links both).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "io/mmap.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/sampling.h"
#include "shared_data.h"
#include "tokenizer/tokenizer.h"

using namespace bwla;

namespace {

TEST(Stories260K, GreedyTextMatchesModelCard) {
  BWLA_REQUIRE_SHARED("models/stories260K-hf/model.safetensors");
  const std::string dir = test::shared_path("models/stories260K-hf");
  auto m = Model::load(dir);
  auto tok = Tokenizer::load_dir(dir);
  // Expected greedy text from ../shared/models/stories260K-llama2c/stories260K.md.
  std::string md = read_text_file(test::shared_path("models/stories260K-llama2c/stories260K.md"));
  const std::string start = "Once upon a time, there was a little girl named Lily.";
  size_t b = md.find(start);
  ASSERT_NE(b, std::string::npos);
  size_t e = md.find("```", b);
  std::string expected = md.substr(b, e - b);
  while (!expected.empty() && expected.back() == '\n') expected.pop_back();
  std::vector<int> ids = {tok->bos_id()};
  KVCache cache(m->cfg, m->cfg.max_pos);
  std::vector<float> logits(m->cfg.vocab);
  forward_tokens(*m, ids.data(), 1, cache, logits.data(), false);
  std::vector<int> out;
  std::string text;
  while (text.size() < expected.size() && cache.pos < m->cfg.max_pos) {
    int nx = argmax(logits.data(), m->cfg.vocab);
    out.push_back(nx);
    text = tok->decode(out, true);
    forward_tokens(*m, &nx, 1, cache, logits.data(), false);
  }
  EXPECT_EQ(text.substr(0, expected.size()), expected);
}

}  // namespace
