// A tiny deterministic bwla fake-quant model directory for the packed-format
// tests: Qwen2-style (q/k/v bias), 2 layers, hidden 80 (not a multiple of 64),
// every encoding the packer supports. All stored values are exactly
// representable in fp16 (multiples of 2^-8 / 2^-6), so packing loses nothing.
//   layer 0: q OKT (signed permutations 8×10), k Hadamard seed, v PSP rank 3,
//            o rows with 3 values (thermometer, 2 planes), gate a 4-level uniform
//            grid (2 planes), up plain, down left dense (fp32);
//   layer 1: plain binary rows; gate has 64-column scale blocks (config
//            weight_quantizer.block_size 64); up has constant rows; down has PSP rank 2;
//            with rc = true, o is an ARB-RC linear (factors stored: salient
//            columns 3 and 70, sparse entries, two 64-column blocks).
#pragma once
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/rng.h"
#include "format/quant_model.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/forward.h"
#include "model/model.h"
#include "quant/rc_factors.h"

namespace bwla::test {

// Logits of every position of toks through m's forward (fresh KV cache).
inline std::vector<float> logits_of(const Model& m, const std::vector<int>& toks) {
  KVCache cache(m.cfg, (int)toks.size());
  std::vector<float> out(toks.size() * (size_t)m.cfg.vocab);
  forward_tokens(m, toks.data(), (int)toks.size(), cache, out.data(), true);
  return out;
}

inline double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}

inline double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

inline json tiny_packed_test_config(int abits = 6, bool tied = true) {
  return {{"architectures", {"Qwen2ForCausalLM"}},
          {"model_type", "qwen2"},
          {"hidden_size", 80},
          {"intermediate_size", 96},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 20},
          {"vocab_size", 48},
          {"max_position_embeddings", 64},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"tie_word_embeddings", tied},
          {"torch_dtype", "float32"},
          {"quantization_config",
           {{"quant_method", "bwla"}, {"format_version", 1}, {"abits", abits}, {"wbits", 1},
            {"method", "test"}, {"weight_quantizer", {{"block_size", 64}}}}}};
}

// n×n signed permutation (exact orthogonal matrix).
inline std::vector<float> signed_perm(int n, Rng& r) {
  std::vector<int> p(n);
  for (int i = 0; i < n; ++i) p[i] = i;
  for (int i = n - 1; i > 0; --i) std::swap(p[i], p[r.below(i + 1)]);
  std::vector<float> m((size_t)n * n, 0.0f);
  for (int i = 0; i < n; ++i) m[(size_t)i * n + p[i]] = (r.below(2) ? 1.0f : -1.0f);
  return m;
}

inline float grid(Rng& r, int lo, int hi, float unit) {  // (lo + below(hi−lo+1))·unit
  return (float)(lo + (int)r.below(hi - lo + 1)) * unit;
}

// Weight rows: kind 0 binary μ±α, 1 three values, 2 four-level uniform grid, 3 some constant
// rows, 4 binary per 64-column block (its own α, μ per block).
inline std::vector<float> tiny_weight(int out, int in, int kind, Rng& r) {
  std::vector<float> w((size_t)out * in);
  for (int i = 0; i < out; ++i) {
    const float a = grid(r, 1, 32, 1.0f / 256), mu = grid(r, -8, 8, 1.0f / 256);
    const float vals[4] = {mu - 3 * a, mu - a, mu + a, mu + 3 * a};
    const float three[3] = {mu - a, mu, mu + 2 * a};
    const float a2 = grid(r, 1, 32, 1.0f / 256), mu2 = grid(r, -8, 8, 1.0f / 256);
    for (int j = 0; j < in; ++j) {
      float v;
      if (kind == 4 && j >= 64) {
        w[(size_t)i * in + j] = r.below(2) ? mu2 + a2 : mu2 - a2;
        continue;
      }
      if (kind == 1) v = three[r.below(3)];
      else if (kind == 2) v = vals[r.below(4)];
      else if (kind == 3 && i % 5 == 0) v = mu;
      else v = r.below(2) ? mu + a : mu - a;
      w[(size_t)i * in + j] = v;
    }
  }
  return w;
}

// Random ARB-RC factors on fp16-exact grids (a, μ multiples of 2^-8, c of 2^-6).
inline RcFactors tiny_rc_factors(int out, int in, int block_cols, std::vector<int> salient, Rng& r) {
  RcFactors f(out, in, block_cols);
  for (auto& v : f.a) v = grid(r, 1, 32, 1.0f / 256);
  for (auto& v : f.mu) v = grid(r, -8, 8, 1.0f / 256);
  for (auto& v : f.c) v = grid(r, 32, 128, 1.0f / 64);
  for (int i = 0; i < out; ++i)
    for (int j = 0; j < in; ++j) {
      const bool sal = std::find(salient.begin(), salient.end(), j) != salient.end();
      uint8_t q = sal ? 0 : r.below(4) == 0 ? 2 : 1;
      if (r.below(2)) q |= RcFactors::kSign;
      if (sal && r.below(2)) q |= RcFactors::kSign2;
      f.code[(size_t)i * in + j] = q;
    }
  return f;
}

inline void write_tiny_fake_quant(const std::string& dir, int abits = 6, bool tied = true,
                                  bool rc = false) {
  std::filesystem::create_directories(dir);
  const json cj = tiny_packed_test_config(abits, tied);
  write_text_file_atomic(dir + "/config.json", cj.dump(2));
  const ModelConfig c = ModelConfig::load(dir);
  Rng r(20260522);
  SafeTensorsWriter w;
  std::vector<float> emb((size_t)c.vocab * c.hidden);
  for (auto& v : emb) v = grid(r, -64, 64, 1.0f / 64);
  w.add_f32("model.embed_tokens.weight", {c.vocab, c.hidden}, emb.data());
  if (!tied) {
    std::vector<float> head((size_t)c.vocab * c.hidden);
    for (auto& v : head) v = (float)r.normal() * 0.05f;
    w.add_f32("lm_head.weight", {c.vocab, c.hidden}, head.data());
  }
  std::vector<float> ones(c.hidden, 1.0f);
  w.add_f32("model.norm.weight", {c.hidden}, ones.data());
  for (int l = 0; l < c.n_layers; ++l) {
    w.add_f32(layer_tensor_name(l, "input_layernorm.weight"), {c.hidden}, ones.data());
    w.add_f32(layer_tensor_name(l, "post_attention_layernorm.weight"), {c.hidden}, ones.data());
    for (int id = 0; id < kNumLinears; ++id) {
      const std::string p = linear_tensor_prefix(l, id);
      const int out = c.linear_out(id), in = c.linear_in(id);
      const int kind = l == 0 && id == kO ? 1 : l == 0 && id == kGate ? 2 : l == 1 && id == kUp ? 3 : l == 1 && id == kGate ? 4 : 0;
      auto wt = tiny_weight(out, in, kind, r);
      if (rc && l == 1 && id == kO) {
        const RcFactors f = tiny_rc_factors(out, in, 64, {3, 70}, r);
        const MatrixRM m = compose_rc(f);
        wt.assign(m.data(), m.data() + m.size());
        add_rc_tensors(w, p, f);
      }
      w.add_f32(p + ".weight", {out, in}, wt.data());
      if (id <= kV) {
        std::vector<float> b(out);
        for (auto& v : b) v = grid(r, -16, 16, 1.0f / 64);
        w.add_f32(p + ".bias", {out}, b.data());
      }
      if (l == 0 && id == kDown) continue;  // left dense
      const float clip = 0.875f + 0.125f * (float)(id % 2);
      w.add_f32(p + ".act_clip", {1}, &clip);
      const double sb = 1.0 * out * in + 32.0 * out;
      w.add(p + ".storage_bits", DType::F64, {1}, &sb, 8);
      if (l == 0 && id == kQ) {
        auto r1 = signed_perm(8, r), r2 = signed_perm(10, r);
        w.add_f32(p + ".okt_r1", {8, 8}, r1.data());
        w.add_f32(p + ".okt_r2", {10, 10}, r2.data());
      } else if (l == 0 && id == kK) {
        const int64_t seed = 7;
        w.add(p + ".hadamard_seed", DType::I64, {1}, &seed, 8);
      }
      const int rank = l == 0 && id == kV ? 3 : l == 1 && id == kDown ? 2 : 0;
      if (rank) {
        std::vector<float> a((size_t)out * rank), b((size_t)rank * in);
        for (auto& v : a) v = grid(r, -32, 32, 1.0f / 256);
        for (auto& v : b) v = grid(r, -32, 32, 1.0f / 256);
        w.add_f32(p + ".psp_a", {out, rank}, a.data());
        w.add_f32(p + ".psp_b", {rank, in}, b.data());
      }
    }
  }
  w.set_metadata("format", "pt");
  w.write(dir + "/model.safetensors");
}

// FNV-1a 64 of a byte string.
inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace bwla::test
