// GGUF export of Llama checkpoints: the q/k row permutation turns HF's
// rotate-half RoPE into GGUF llama's adjacent-pair RoPE; a tiny random
// checkpoint exports with the expected keys, names, shapes and bytes; the
// SentencePiece .model and byte-level BPE vocabularies convert; unsupported
// architectures and vocab mismatches fail naming the file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "error_of.h"
#include "gguf_test_reader.h"
#include "io/safetensors.h"
#include "export/gguf_export.h"
#include "model/random_checkpoint.h"
#include "shared_data.h"
#include "tmpdir.h"

using namespace bwla;

namespace {
using test::error_of;

// HF Llama: pairs (j, j + d/2) rotated by angle pos * theta^(-2j/d).
std::vector<double> rope_rotate_half(const std::vector<double>& x, int d, int pos, double theta) {
  std::vector<double> y(x);
  for (int j = 0; j < d / 2; ++j) {
    double a = pos * std::pow(theta, -2.0 * j / d);
    y[j] = x[j] * std::cos(a) - x[j + d / 2] * std::sin(a);
    y[j + d / 2] = x[j + d / 2] * std::cos(a) + x[j] * std::sin(a);
  }
  return y;
}
// GGUF llama (ggml rope mode 0): pairs (2i, 2i+1), same frequencies.
std::vector<double> rope_adjacent(const std::vector<double>& x, int d, int pos, double theta) {
  std::vector<double> y(x);
  for (int i = 0; i < d / 2; ++i) {
    double a = pos * std::pow(theta, -2.0 * i / d);
    y[2 * i] = x[2 * i] * std::cos(a) - x[2 * i + 1] * std::sin(a);
    y[2 * i + 1] = x[2 * i + 1] * std::cos(a) + x[2 * i] * std::sin(a);
  }
  return y;
}

}  // namespace

TEST(GgufExport, PermutationMapsRotateHalfToAdjacentPairs) {
  const int heads = 3, d = 8, cols = 5;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> W((size_t)heads * d * cols), x(cols);
  for (auto& v : W) v = nd(rng);
  for (auto& v : x) v = nd(rng);
  std::vector<float> P = W;
  permute_rope_rows_hf_to_gguf(P.data(), heads, d, cols);
  auto matvec = [&](const std::vector<float>& M, int h) {
    std::vector<double> y(d, 0.0);
    for (int r = 0; r < d; ++r)
      for (int c = 0; c < cols; ++c) y[r] += (double)M[((size_t)h * d + r) * cols + c] * x[c];
    return y;
  };
  for (int h = 0; h < heads; ++h)
    for (int pos : {0, 1, 5, 37}) {
      auto hf = rope_rotate_half(matvec(W, h), d, pos, 10000.0);
      auto gg = rope_adjacent(matvec(P, h), d, pos, 10000.0);
      // gg must be hf with its components reordered: gg[2i+part] = hf[part*d/2 + i].
      for (int i = 0; i < d / 2; ++i)
        for (int part = 0; part < 2; ++part)
          EXPECT_NEAR(gg[2 * i + part], hf[part * d / 2 + i], 1e-9) << h << " " << pos << " " << i;
    }
  // q·k is preserved when both get the permutation (one head: q=k=row space).
  auto q = rope_rotate_half(matvec(W, 1), d, 9, 500.0), k = rope_rotate_half(matvec(W, 2), d, 4, 500.0);
  auto qg = rope_adjacent(matvec(P, 1), d, 9, 500.0), kg = rope_adjacent(matvec(P, 2), d, 4, 500.0);
  double a = 0, b = 0;
  for (int j = 0; j < d; ++j) a += q[j] * k[j], b += qg[j] * kg[j];
  EXPECT_NEAR(a, b, 1e-9);
}

TEST(GgufExport, TinyLlamaCheckpointExports) {
  BWLA_REQUIRE_SHARED("models/stories260K-hf/tokenizer.json");
  test::TempDir td;
  RandomCheckpointSpec spec;
  spec.preset = "tiny-llama";  // untied, hidden 64, 4 heads of 16, 2 kv heads, vocab 512
  spec.dtype = DType::BF16;
  spec.seed = 3;
  spec.tokenizer_dir = test::shared_path("models/stories260K-hf");
  const std::string dir = td.file("ck");
  write_random_checkpoint(spec, dir);
  const std::string out = td.file("m.gguf");
  GgufExportOptions opt;
  opt.type = GgmlType::F32;  // bf16 -> f32 is exact, so bytes can be compared
  auto rep = export_gguf(dir, out, opt);
  EXPECT_EQ(rep.vocab_model, "llama");
  EXPECT_EQ(rep.n_vocab, 512);

  auto f = gguf_test::read(out);
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.kv["general.architecture"].s, "llama");
  EXPECT_EQ(f.kv["general.file_type"].u, 0u);
  EXPECT_EQ(f.kv["llama.embedding_length"].u, 64u);
  EXPECT_EQ(f.kv["llama.block_count"].u, 2u);
  EXPECT_EQ(f.kv["llama.feed_forward_length"].u, 160u);
  EXPECT_EQ(f.kv["llama.attention.head_count"].u, 4u);
  EXPECT_EQ(f.kv["llama.attention.head_count_kv"].u, 2u);
  EXPECT_EQ(f.kv["llama.rope.dimension_count"].u, 16u);
  EXPECT_EQ(f.kv["llama.context_length"].u, 256u);
  EXPECT_EQ(f.kv["llama.rope.freq_base"].type, 6u);
  EXPECT_NEAR(f.kv["llama.attention.layer_norm_rms_epsilon"].f, 1e-6, 1e-10);
  EXPECT_EQ(f.kv["tokenizer.ggml.model"].s, "llama");
  ASSERT_EQ(f.kv["tokenizer.ggml.tokens"].strs.size(), 512u);
  EXPECT_EQ(f.kv["tokenizer.ggml.tokens"].strs[1], "<s>");
  EXPECT_EQ(f.kv["tokenizer.ggml.token_type"].nums[0], 2);  // <unk>
  EXPECT_EQ(f.kv["tokenizer.ggml.token_type"].nums[1], 3);  // <s> control
  EXPECT_EQ(f.kv["tokenizer.ggml.token_type"].nums[3], 6);  // <0x00> byte
  EXPECT_EQ(f.kv["tokenizer.ggml.scores"].nums.size(), 512u);
  EXPECT_EQ(f.kv["tokenizer.ggml.bos_token_id"].u, 1u);
  EXPECT_EQ(f.kv["tokenizer.ggml.eos_token_id"].u, 2u);

  ASSERT_EQ(f.tensors.size(), 1u + 2 * 9 + 2);
  EXPECT_EQ(f.tensors.front().name, "token_embd.weight");
  EXPECT_EQ(f.tensors.back().name, "output.weight");
  SafeTensorsFile st(dir + "/model.safetensors");
  for (auto& t : f.tensors) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  auto find = [&](const std::string& n) -> const gguf_test::TensorInfo& {
    for (auto& t : f.tensors)
      if (t.name == n) return t;
    throw std::runtime_error("missing " + n);
  };
  auto same = [&](const std::string& gg, const std::string& hf) {
    auto& t = find(gg);
    auto ref = st.get(hf).to_f32();
    ASSERT_EQ(gguf_test::numel(t), ref.size()) << gg;
    EXPECT_EQ(std::memcmp(f.tensor_data(t), ref.data(), ref.size() * 4), 0) << gg;
  };
  same("token_embd.weight", "model.embed_tokens.weight");
  same("blk.1.attn_v.weight", "model.layers.1.self_attn.v_proj.weight");
  same("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight");
  same("blk.1.ffn_norm.weight", "model.layers.1.post_attention_layernorm.weight");
  same("output.weight", "lm_head.weight");
  EXPECT_EQ(find("blk.0.ffn_down.weight").ne, (std::vector<uint64_t>{160, 64}));
  EXPECT_EQ(find("blk.0.attn_k.weight").ne, (std::vector<uint64_t>{64, 32}));
  // k rows are permuted within each head of 16: GGUF row 2i+part = HF row part*8+i.
  auto k = st.get("model.layers.0.self_attn.k_proj.weight").to_f32();
  const float* kg = (const float*)f.tensor_data(find("blk.0.attn_k.weight"));
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 8; ++i)
      for (int part = 0; part < 2; ++part)
        EXPECT_EQ(std::memcmp(kg + (h * 16 + 2 * i + part) * 64, k.data() + (h * 16 + part * 8 + i) * 64,
                              64 * 4),
                  0)
            << h << " " << i << " " << part;

  // F16 export: same layout, half the matrix bytes, norms stay F32.
  opt.type = GgmlType::F16;
  export_gguf(dir, td.file("h.gguf"), opt);
  auto h = gguf_test::read(td.file("h.gguf"));
  EXPECT_EQ(h.kv["general.file_type"].u, 1u);
  for (auto& t : h.tensors) EXPECT_EQ(t.type, t.ne.size() == 1 ? 0u : 1u) << t.name;
}

TEST(GgufExport, RejectsOtherArchitecturesAndMismatchedVocab) {
  test::TempDir td;
  RandomCheckpointSpec spec;
  spec.preset = "tiny-qwen2";
  write_random_checkpoint(spec, td.file("q"));
  std::string e = error_of([&] { export_gguf(td.file("q"), td.file("q.gguf"), {}); });
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("Qwen2"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(td.file("q.gguf")));

  spec.preset = "tiny-llama";
  write_random_checkpoint(spec, td.file("notok"));
  e = error_of([&] { export_gguf(td.file("notok"), td.file("n.gguf"), {}); });
  EXPECT_NE(e.find("tokenizer"), std::string::npos) << e;

  GgufVocab v;
  v.source = "some/tokenizer.json";
  v.tokens.assign(10, "x");
  v.types.assign(10, 1);
  e = error_of([&] { fit_vocab(v, 8); });
  EXPECT_NE(e.find("some/tokenizer.json"), std::string::npos) << e;
  v.types[9] = 3;  // a trailing special token past the vocab is dropped, a normal one is not
  e = error_of([&] { fit_vocab(v, 8); });
  EXPECT_NE(e.find("9 tokens"), std::string::npos) << e;
  EXPECT_EQ(v.dropped, 1);
  fit_vocab(v, 12);
  EXPECT_EQ(v.tokens.size(), 12u);
  EXPECT_EQ(v.tokens[11], "[PAD11]");
  EXPECT_EQ(v.types[11], 5);
}

TEST(GgufExport, SentencePieceModelVocab) {
  BWLA_REQUIRE_SHARED("tokenizers/llama2-sentencepiece/tokenizer.model");
  auto v = vocab_from_sentencepiece_model(
      test::shared_path("tokenizers/llama2-sentencepiece/tokenizer.model"));
  EXPECT_EQ(v.model, "llama");
  ASSERT_EQ(v.tokens.size(), 32000u);
  EXPECT_EQ(v.tokens[0], "<unk>");
  EXPECT_EQ(v.types[0], 2);
  EXPECT_EQ(v.tokens[1], "<s>");
  EXPECT_EQ(v.types[1], 3);
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.types[3], 6);
  EXPECT_EQ(v.types[500], 1);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_LT(v.scores[1000], v.scores[500]);  // BPE pieces: earlier merges score higher
  std::string e = error_of([] {
    vocab_from_sentencepiece_model(test::shared_path("models/stories260K-hf/config.json"));
  });
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
}

TEST(GgufExport, ByteLevelBpeVocab) {
  BWLA_REQUIRE_SHARED("tokenizers/smollm-bpe/tokenizer.json");
  auto v = vocab_from_tokenizer_json(test::shared_path("tokenizers/smollm-bpe"));
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "smollm");
  EXPECT_EQ(v.merges.size(), 48900u);
  EXPECT_TRUE(v.scores.empty());
  EXPECT_EQ(v.types[0], 3);  // <|endoftext|> is special
  EXPECT_EQ(v.merges[0].find(' ') != std::string::npos, true);
  // This tokenizer appends "[PAD]" at id 49152, past SmolLM2's vocab_size.
  ASSERT_EQ(v.tokens.size(), 49153u);
  fit_vocab(v, 49152);
  EXPECT_EQ(v.tokens.size(), 49152u);
  EXPECT_EQ(v.dropped, 1);
}
