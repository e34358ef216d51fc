// fp32 forward: a straightforward double-precision reference of each layer,
// prefill/decode consistency for every architecture (the stories260K greedy
// text, which needs the tokenizer, is in test_eval_golden_text.cc).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <memory>

#include "core/error.h"
#include "io/mmap.h"
#include "model/forward.h"
#include "model/ops.h"
#include "model/random_checkpoint.h"
#include "model/sampling.h"
#include "shared_data.h"
#include "tmpdir.h"

using namespace bwla;

namespace {

std::unique_ptr<Model> make_model(const std::string& preset, test::TempDir& td,
                                  DType dt = DType::F32, uint64_t seed = 1) {
  RandomCheckpointSpec s;
  s.preset = preset;
  s.dtype = dt;
  s.seed = seed;
  write_random_checkpoint(s, td.str());
  return Model::load(td.str());
}

const int* toks_of(const std::vector<int>& s, int i) { return s.data() + i; }

const float* dense_w(const LayerWeights& L, int id) {
  return static_cast<const DenseLinear*>(L.lin[id].get())->weight();
}
const std::vector<float>& dense_b(const LayerWeights& L, int id) {
  return static_cast<const DenseLinear*>(L.lin[id].get())->bias();
}

// y = x·Wᵀ + b in double.
std::vector<double> ref_linear(const std::vector<double>& x, int n, const LayerWeights& L, int id) {
  const auto* lin = L.lin[id].get();
  const int in = lin->in_features(), out = lin->out_features();
  const float* w = dense_w(L, id);
  const auto& b = dense_b(L, id);
  std::vector<double> y((size_t)n * out);
  for (int t = 0; t < n; ++t)
    for (int o = 0; o < out; ++o) {
      double s = b.empty() ? 0.0 : b[o];
      for (int i = 0; i < in; ++i) s += x[(size_t)t * in + i] * w[(size_t)o * in + i];
      y[(size_t)t * out + o] = s;
    }
  return y;
}

void ref_rmsnorm(std::vector<double>& x, int rows, int dim, const std::vector<float>& w,
                 double eps) {
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += x[(size_t)r * dim + i] * x[(size_t)r * dim + i];
    double s = 1.0 / std::sqrt(ss / dim + eps);
    for (int i = 0; i < dim; ++i) x[(size_t)r * dim + i] *= s * w[i];
  }
}

// RoPE written as complex rotation of pairs (i, i + d/2), theta^(-2i/d).
void ref_rope(std::vector<double>& x, int n, int heads, int hd, double theta) {
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        double f = std::pow(theta, -2.0 * i / hd);
        double c = std::cos(t * f), s = std::sin(t * f);
        double& a = x[(size_t)t * heads * hd + h * hd + i];
        double& b = x[(size_t)t * heads * hd + h * hd + i + hd / 2];
        double na = a * c - b * s, nb = b * c + a * s;
        a = na;
        b = nb;
      }
}

// One decoder layer, positions 0..n-1, written directly from the equations.
std::vector<double> ref_layer(const ModelConfig& c, const LayerWeights& L,
                              const std::vector<double>& x) {
  const int n = (int)(x.size() / c.hidden), hd = c.head_dim;
  std::vector<double> h = x;
  ref_rmsnorm(h, n, c.hidden, L.attn_norm, c.rms_eps);
  auto q = ref_linear(h, n, L, kQ), k = ref_linear(h, n, L, kK), v = ref_linear(h, n, L, kV);
  if (c.qk_norm) {
    ref_rmsnorm(q, n * c.n_heads, hd, L.q_norm, c.rms_eps);
    ref_rmsnorm(k, n * c.n_kv_heads, hd, L.k_norm, c.rms_eps);
  }
  ref_rope(q, n, c.n_heads, hd, c.rope_theta);
  ref_rope(k, n, c.n_kv_heads, hd, c.rope_theta);
  std::vector<double> att((size_t)n * c.q_dim());
  for (int hh = 0; hh < c.n_heads; ++hh) {
    int g = hh * c.n_kv_heads / c.n_heads;  // GQA: consecutive query heads share a kv head
    for (int t = 0; t < n; ++t) {
      std::vector<double> s(t + 1);
      double mx = -1e300;
      for (int j = 0; j <= t; ++j) {
        double d = 0;
        for (int i = 0; i < hd; ++i)
          d += q[(size_t)t * c.q_dim() + hh * hd + i] * k[(size_t)j * c.kv_dim() + g * hd + i];
        s[j] = d / std::sqrt((double)hd);
        mx = std::max(mx, s[j]);
      }
      double z = 0;
      for (auto& e : s) z += (e = std::exp(e - mx));
      for (int i = 0; i < hd; ++i) {
        double o = 0;
        for (int j = 0; j <= t; ++j) o += s[j] / z * v[(size_t)j * c.kv_dim() + g * hd + i];
        att[(size_t)t * c.q_dim() + hh * hd + i] = o;
      }
    }
  }
  auto o = ref_linear(att, n, L, kO);
  std::vector<double> r = x;
  for (size_t i = 0; i < r.size(); ++i) r[i] += o[i];
  h = r;
  ref_rmsnorm(h, n, c.hidden, L.mlp_norm, c.rms_eps);
  auto gt = ref_linear(h, n, L, kGate), up = ref_linear(h, n, L, kUp);
  for (size_t i = 0; i < gt.size(); ++i) gt[i] = gt[i] / (1 + std::exp(-gt[i])) * up[i];
  auto d = ref_linear(gt, n, L, kDown);
  for (size_t i = 0; i < r.size(); ++i) r[i] += d[i];
  return r;
}

class ArchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchTest, LayerMatchesScalarReference) {
  test::TempDir td;
  auto m = make_model(GetParam(), td);
  const auto& c = m->cfg;
  const int n = 19;
  Rng rng(7);
  std::vector<float> x((size_t)n * c.hidden);
  for (auto& e : x) e = (float)rng.normal();
  std::vector<double> xd(x.begin(), x.end());
  for (int l = 0; l < c.n_layers; ++l) {
    auto ref = ref_layer(c, m->layers[l], xd);
    std::vector<float> y = x;
    layer_forward(c, *m->rope, m->layers[l], l, y.data(), 1, n, nullptr);
    double err = 0, nrm = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      err = std::max(err, std::abs(y[i] - ref[i]));
      nrm = std::max(nrm, std::abs(ref[i]));
    }
    EXPECT_LT(err, 1e-4 * std::max(1.0, nrm)) << GetParam() << " layer " << l;
  }
}

TEST_P(ArchTest, DecodeAfterPrefillEqualsLongerPrefill) {
  test::TempDir td;
  auto m = make_model(GetParam(), td, DType::BF16, 3);
  const int n = 23, V = m->cfg.vocab;
  std::vector<int> toks(n);
  Rng rng(5);
  for (auto& t : toks) t = (int)rng.below(V);
  // One prefill of all n tokens.
  KVCache c1(m->cfg, 64);
  std::vector<float> all((size_t)n * V);
  forward_tokens(*m, toks.data(), n, c1, all.data(), true);
  // Prefill of n-5, then 5 single-token decodes.
  KVCache c2(m->cfg, 64);
  std::vector<float> part((size_t)(n - 5) * V), one(V);
  forward_tokens(*m, toks.data(), n - 5, c2, part.data(), true);
  for (size_t i = 0; i < part.size(); ++i) ASSERT_NEAR(part[i], all[i], 1e-4) << i;
  for (int t = n - 5; t < n; ++t) {
    forward_tokens(*m, &toks[t], 1, c2, one.data(), false);
    for (int j = 0; j < V; ++j)
      ASSERT_NEAR(one[j], all[(size_t)t * V + j], 2e-4) << GetParam() << " pos " << t;
  }
  EXPECT_EQ(c2.pos, n);
}

// Continuous batching: one decode step of several sequences at different
// positions (each with its own cache) against each sequence decoded alone.
TEST_P(ArchTest, DecodeBatchEqualsEachSequenceAlone) {
  test::TempDir td;
  auto m = make_model(GetParam(), td, DType::BF16, 4);
  const int V = m->cfg.vocab, B = 3;
  const int lens[B] = {5, 17, 1};
  Rng rng(9);
  std::vector<std::vector<int>> seqs(B);
  for (int b = 0; b < B; ++b) {
    seqs[b].resize(lens[b] + 2);
    for (auto& t : seqs[b]) t = (int)rng.below(V);
  }
  std::vector<KVCache> alone, batched;
  for (int b = 0; b < B; ++b) {
    alone.emplace_back(m->cfg, 32);
    batched.emplace_back(m->cfg, 32);
  }
  std::vector<float> one(V), rows((size_t)B * V);
  for (int b = 0; b < B; ++b) {
    forward_tokens(*m, seqs[b].data(), lens[b], alone[b], one.data(), false);
    forward_tokens(*m, seqs[b].data(), lens[b], batched[b], one.data(), false);
  }
  KVCache* cs[B] = {&batched[0], &batched[1], &batched[2]};
  for (int step = 0; step < 2; ++step) {
    int toks[B];
    for (int b = 0; b < B; ++b) toks[b] = seqs[b][lens[b] + step];
    forward_decode_batch(*m, toks, B, cs, rows.data());
    for (int b = 0; b < B; ++b) {
      forward_tokens(*m, &toks[b], 1, alone[b], one.data(), false);
      EXPECT_EQ(batched[b].pos, alone[b].pos);
      for (int j = 0; j < V; ++j)
        ASSERT_NEAR(rows[(size_t)b * V + j], one[j], 1e-4)
            << GetParam() << " row " << b << " step " << step << " logit " << j;
    }
  }
  // A full cache is an error, not a write past its end.
  KVCache full(m->cfg, lens[2]);
  std::vector<float> tmp(V);
  forward_tokens(*m, seqs[2].data(), lens[2], full, tmp.data(), false);
  KVCache* fc[1] = {&full};
  EXPECT_THROW(forward_decode_batch(*m, toks_of(seqs[2], lens[2]), 1, fc, tmp.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(Archs, ArchTest,
                         ::testing::Values("tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-qwen3"));

// Batched prefill attention (several segments at once, query blocks of 128 rows
// with a tail, sliding window) against single-token decode through a KV cache,
// which takes a separate code path.
TEST(Forward, MultiSegmentBlockedPrefillMatchesDecode) {
  test::TempDir td;
  auto m = make_model("tiny-qwen2", td);  // GQA and q/k/v bias
  const int n_seq = 2, seq = 150;
  for (int win : {0, 50}) {
    ModelConfig c = m->cfg;
    c.sliding_window = win;
    ASSERT_GE(c.max_pos, seq);
    Rng rng(11 + win);
    std::vector<float> x((size_t)n_seq * seq * c.hidden);
    for (auto& e : x) e = (float)rng.normal();
    std::vector<float> y = x;
    layer_forward(c, *m->rope, m->layers[0], 0, y.data(), n_seq, seq, nullptr);
    double err = 0, nrm = 0;
    for (int s = 0; s < n_seq; ++s) {
      KVCache kv(c, seq);
      for (int t = 0; t < seq; ++t) {
        const size_t off = ((size_t)s * seq + t) * c.hidden;
        std::vector<float> r(x.begin() + off, x.begin() + off + c.hidden);
        kv.pos = t;
        layer_forward(c, *m->rope, m->layers[0], 0, r.data(), 1, 1, &kv);
        for (int i = 0; i < c.hidden; ++i) {
          err = std::max(err, (double)std::abs(r[i] - y[off + i]));
          nrm = std::max(nrm, (double)std::abs(r[i]));
        }
      }
    }
    EXPECT_LT(err, 1e-4 * std::max(1.0, nrm)) << "window " << win;
  }
}

TEST(Forward, RandomCheckpointHasArchitectureFeatures) {
  test::TempDir a, b;
  auto q2 = make_model("tiny-qwen2", a);
  EXPECT_TRUE(q2->cfg.qkv_bias);
  EXPECT_FALSE(dense_b(q2->layers[0], kQ).empty());
  EXPECT_TRUE(dense_b(q2->layers[0], kO).empty());
  auto q3 = make_model("tiny-qwen3", b);
  EXPECT_TRUE(q3->cfg.qk_norm);
  EXPECT_EQ((int)q3->layers[0].q_norm.size(), q3->cfg.head_dim);
  EXPECT_EQ(q3->cfg.head_dim, 32);  // explicit head_dim != hidden / heads
}

TEST(Forward, ContextOverflowIsAnError) {
  test::TempDir td;
  auto m = make_model("tiny-llama", td);
  KVCache cache(m->cfg, 8);
  std::vector<int> toks(9, 3);
  EXPECT_THROW(forward_tokens(*m, toks.data(), 9, cache, nullptr, false), Error);
  std::vector<int> bad = {1, 100000};
  KVCache c2(m->cfg, 8);
  EXPECT_THROW(forward_tokens(*m, bad.data(), 2, c2, nullptr, false), Error);
}

TEST(Forward, Llama3RopeScalingChangesOnlyLowFrequencies) {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000;
  auto base = rope_inv_freq(c);
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position = 8192;
  auto sc = rope_inv_freq(c);
  EXPECT_FLOAT_EQ(sc[0], base[0]);                 // high frequency kept
  EXPECT_NEAR(sc.back(), base.back() / 8, 1e-12);  // lowest frequency divided by factor
  for (size_t i = 0; i < sc.size(); ++i) EXPECT_LE(sc[i], base[i] * (1 + 1e-6));
}

// Rope::apply keeps the last position's angles per thread (decode rotates q,
// then k): two ropes with other frequencies at the same position, a rope made
// again in the place of a freed one, and positions in any order all rotate
// with their own angles.
TEST(Forward, RopeAngleReuseNeverCrossesFrequenciesOrPositions) {
  auto rotate_ref = [](const std::vector<float>& f, std::vector<float> x, int pos) {
    const int half = (int)f.size();
    for (int i = 0; i < half; ++i) {
      const float a = (float)pos * f[i], c = std::cos(a), s = std::sin(a);
      const float u = x[i], v = x[i + half];
      x[i] = u * c - v * s;
      x[i + half] = v * c + u * s;
    }
    return x;
  };
  std::vector<float> x0(64);
  for (int i = 0; i < 64; ++i) x0[i] = std::sin(0.7f * i) + 0.1f;
  for (int pass = 0; pass < 2; ++pass) {
    for (double theta : {10000.0, 500000.0, 10000.0}) {
      ModelConfig c;
      c.head_dim = 64;
      c.rope_theta = theta;
      auto rope = std::make_unique<Rope>(c);  // freed at the end: the next may reuse the place
      for (int pos : {5, 5, 9, 5}) {
        std::vector<float> x = x0;
        rope->apply(x.data(), 1, 1, pos);
        const auto want = rotate_ref(rope->inv_freq(), x0, pos);
        for (int i = 0; i < 64; ++i)
          ASSERT_NEAR(x[i], want[i], 1e-6) << "theta " << theta << " pos " << pos << " i " << i;
      }
    }
  }
}

}  // namespace

namespace {
TEST(Forward, LazySixteenBitWeightsMatchEagerFp32) {
  test::TempDir td;
  RandomCheckpointSpec s;
  s.preset = "tiny-qwen2";  // has biases
  s.dtype = DType::BF16;
  write_random_checkpoint(s, td.str());
  auto eager = Model::load(td.str());
  setenv("BWLA_LAZY_WEIGHTS", "1", 1);
  auto lazy = Model::load(td.str());
  unsetenv("BWLA_LAZY_WEIGHTS");
  ASSERT_NE(dynamic_cast<const LazyDenseLinear*>(lazy->layers[0].lin[kQ].get()), nullptr);
  EXPECT_LT(lazy->param_bytes(), eager->param_bytes());  // 16-bit stays 16-bit in memory
  std::vector<int> toks = {1, 5, 9, 200, 17, 3, 44};
  const int V = eager->cfg.vocab, n = (int)toks.size();
  std::vector<float> a((size_t)n * V), b((size_t)n * V);
  KVCache c1(eager->cfg, 16), c2(lazy->cfg, 16);
  forward_tokens(*eager, toks.data(), n, c1, a.data(), true);
  forward_tokens(*lazy, toks.data(), n, c2, b.data(), true);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << i;
}

TEST(Forward, PrepackedDenseLinearsMatchPlainFp32) {
  if (!PrepackedGemm::enabled()) GTEST_SKIP() << "oneDNN backend not built or disabled";
  for (const char* preset : {"tiny-qwen2", "tiny-llama"}) {  // biases; untied head
    test::TempDir td;
    RandomCheckpointSpec s;
    s.preset = preset;
    s.dtype = DType::BF16;
    write_random_checkpoint(s, td.str());
    auto plain = Model::load(td.str());
    auto packed = Model::load(td.str(), /*prepack_dense=*/true);
    const auto* d = dynamic_cast<const DenseLinear*>(packed->layers[0].lin[kQ].get());
    ASSERT_NE(d, nullptr);
    EXPECT_TRUE(d->prepacked()) << preset;
    EXPECT_FALSE(dynamic_cast<const DenseLinear*>(plain->layers[0].lin[kQ].get())->prepacked());
    if (!packed->cfg.tie_embeddings) {
      EXPECT_TRUE(dynamic_cast<const DenseLinear*>(packed->lm_head.get())->prepacked()) << preset;
    }
    // Prefill of 7 tokens, then 3 decode steps (n = 1 products).
    std::vector<int> toks = {1, 5, 9, 200, 17, 3, 44, 8, 90, 2};
    const int V = plain->cfg.vocab, n0 = 7;
    KVCache c1(plain->cfg, 16), c2(packed->cfg, 16);
    std::vector<float> a((size_t)n0 * V), b((size_t)n0 * V);
    forward_tokens(*plain, toks.data(), n0, c1, a.data(), true);
    forward_tokens(*packed, toks.data(), n0, c2, b.data(), true);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << preset << " prefill " << i;
    for (int k = n0; k < (int)toks.size(); ++k) {
      forward_tokens(*plain, &toks[k], 1, c1, a.data(), false);
      forward_tokens(*packed, &toks[k], 1, c2, b.data(), false);
      for (int i = 0; i < V; ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << preset << " decode " << k << " " << i;
    }
  }
}
}  // namespace

namespace {
struct SlotInputs : Capture {
  std::vector<float> slot[kNumInputSlots];
  void linear_input(int, int s, const float* x, int n, int dim) override {
    slot[s].assign(x, x + (size_t)n * dim);
  }
};
}  // namespace

// The four stages the true-sequential quantization loop calls are exactly
// layer_forward: same output bits, same linear inputs seen by a capture.
TEST(Forward, StagesEqualLayerForwardBitForBit) {
  for (const char* preset : {"tiny-llama", "tiny-qwen3"}) {
    test::TempDir td;
    auto m = make_model(preset, td);
    const ModelConfig& c = m->cfg;
    const int L = 20, n = 2 * L, H = c.hidden;  // 2 segments; >= 16 tokens takes the prefill attention
    std::vector<int> toks(n);
    for (int i = 0; i < n; ++i) toks[i] = (i * 7 + 3) % c.vocab;
    std::vector<float> x0((size_t)n * H);
    embed_tokens(*m, toks.data(), n, x0.data());
    for (int layer = 0; layer < c.n_layers; ++layer) {
      SlotInputs full, staged;
      std::vector<float> xf = x0, xs = x0;
      layer_forward(c, *m->rope, m->layers[layer], layer, xf.data(), 2, L, nullptr, &full);
      std::vector<float> att((size_t)n * c.q_dim()), act((size_t)n * c.intermediate);
      layer_attention(c, *m->rope, m->layers[layer], layer, xs.data(), 2, L, att.data(), &staged);
      layer_attn_residual(c, m->layers[layer], layer, att.data(), n, xs.data(), &staged);
      layer_mlp_act(c, m->layers[layer], layer, xs.data(), n, act.data(), &staged);
      layer_mlp_residual(c, m->layers[layer], layer, act.data(), n, xs.data(), &staged);
      for (int s = 0; s < kNumInputSlots; ++s) {
        ASSERT_FALSE(full.slot[s].empty()) << s;
        EXPECT_EQ(full.slot[s], staged.slot[s]) << preset << " layer " << layer << " slot " << s;
      }
      EXPECT_EQ(xf, xs) << preset << " layer " << layer;
      EXPECT_NE(xf, x0);
      x0 = xf;
    }
  }
}
