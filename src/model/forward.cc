#include "model/forward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <omp.h>

#include "core/error.h"
#include "kernels/attn_head.h"
#include "model/linear.h"

namespace bwla {

KVCache::KVCache(const ModelConfig& c, int max_ctx_)
    : max_ctx(max_ctx_), kv_dim(c.kv_dim()), k(c.n_layers), v(c.n_layers) {
  BWLA_CHECK(max_ctx > 0, "context size must be positive, got {}", max_ctx);
  for (int l = 0; l < c.n_layers; ++l) {
    k[l].assign((size_t)max_ctx * kv_dim, 0.f);
    v[l].assign((size_t)max_ctx * kv_dim, 0.f);
  }
}

namespace {

// Prefill attention of n_seq segments of n queries each: segment s has queries
// q + s·n·qs at positions p0..p0+n-1 over keys/values kb/vb + s·kv_off at
// positions 0..p0+n-1. Tasks (segment, head) run on OpenMP threads with
// single-threaded sgemm; queries go in blocks of kQBlock rows so each block
// multiplies only the keys it can see (causal, sliding window).
void attend_prefill(const ModelConfig& c, const float* q, const float* kb, const float* vb,
                    long kv_off, int n_seq, int n, int p0, float* out) {
  constexpr int kQBlock = 128;
  const int hd = c.head_dim, nh = c.n_heads, group = c.n_heads / c.n_kv_heads;
  const int qs = c.q_dim(), kvd = c.kv_dim();
  const float scale = 1.0f / std::sqrt((float)hd);
  const int win = c.sliding_window;
  auto first_key = [&](int p) { return win > 0 ? std::max(0, p - win + 1) : 0; };
  const int tasks = n_seq * nh;
  const bool par = tasks > 1 && omp_get_max_threads() > 1 && !omp_in_parallel();
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int task = 0; task < tasks; ++task) {
    const int s = task / nh, h = task % nh, g = h / group;
    const float* qh = q + (size_t)s * n * qs + h * hd;
    const float* kh = kb + s * kv_off + g * hd;
    const float* vh = vb + s * kv_off + g * hd;
    float* oh = out + (size_t)s * n * qs + h * hd;
    thread_local std::vector<float> S;
    for (int t0 = 0; t0 < n; t0 += kQBlock) {
      const int t1 = std::min(n, t0 + kQBlock), rows = t1 - t0;
      const int j0 = first_key(p0 + t0), j1 = p0 + t1, T = j1 - j0;
      if (S.size() < (size_t)rows * T) S.resize((size_t)rows * T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, T, hd, scale, qh + (size_t)t0 * qs,
                  qs, kh + (size_t)j0 * kvd, kvd, 0.f, S.data(), T);
      for (int t = t0; t < t1; ++t) {
        float* sr = S.data() + (size_t)(t - t0) * T;
        const int p = p0 + t, a = first_key(p) - j0, e = p + 1 - j0;  // valid keys [a, e)
        for (int j = 0; j < a; ++j) sr[j] = 0.f;
        softmax(sr + a, e - a);
        for (int j = e; j < T; ++j) sr[j] = 0.f;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, T, 1.f, S.data(), T,
                  vh + (size_t)j0 * kvd, kvd, 0.f, oh + (size_t)t0 * qs, qs);
    }
  }
}

// Causal attention of n queries (positions p0..p0+n-1) over keys/values at
// positions 0..p0+n-1 stored in kb/vb [*, kv_dim].
void attend(const ModelConfig& c, const float* q, const float* kb, const float* vb, int n, int p0,
            float* out) {
  const int hd = c.head_dim, nh = c.n_heads, group = c.n_heads / c.n_kv_heads;
  const int qs = c.q_dim(), kvd = c.kv_dim();
  const int T = p0 + n;
  const float scale = 1.0f / std::sqrt((float)hd);
  const int win = c.sliding_window;
  auto first_key = [&](int p) { return win > 0 ? std::max(0, p - win + 1) : 0; };
  const bool par = (long)n * nh * T * hd >= (1L << 16);
#pragma omp parallel for schedule(static) collapse(2) if (par)
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < nh; ++h) {
      const int g = h / group, p = p0 + t, j0 = first_key(p);
      const float* qv = q + (size_t)t * qs + h * hd;
      thread_local std::vector<float> s;
      if (s.size() < (size_t)(p + 1 - j0)) s.resize((size_t)(p + 1 - j0));
      attn_head(qv, kb + (size_t)j0 * kvd + g * hd, kvd, vb + (size_t)j0 * kvd + g * hd, kvd,
                p + 1 - j0, hd, scale, s.data(), out + (size_t)t * qs + h * hd);
    }
  }
}

void head_rmsnorm(float* x, int n, int heads, int hd, const std::vector<float>& w, double eps) {
  rmsnorm(x, w.data(), x, n * heads, hd, eps);
}

// q, k, v: the layer's projections of its normed input h (n rows), with
// Qwen3's per-head norms applied.
void qkv_projections(const ModelConfig& c, const LayerWeights& L, const float* h, int n, float* q,
                     float* k, float* v) {
  const Linear* lins[3] = {L.lin[kQ].get(), L.lin[kK].get(), L.lin[kV].get()};
  float* ys[3] = {q, k, v};
  forward_same_input(lins, ys, 3, h, n);
  if (c.qk_norm) {
    head_rmsnorm(q, n, c.n_heads, c.head_dim, L.q_norm, c.rms_eps);
    head_rmsnorm(k, n, c.n_kv_heads, c.head_dim, L.k_norm, c.rms_eps);
  }
}

}  // namespace

namespace {

// Per-thread scratch reused across calls: fresh multi-MB vectors would be
// mmap'd and page-faulted in (zeroed by the kernel) on every call.
float* scratch(std::vector<float>& b, size_t size) {
  if (b.size() < size) b.resize(size);
  return b.data();
}

// The rmsnorm output both the attention and the MLP stage read their linears
// from (one buffer per thread, shared by the two stages).
thread_local std::vector<float> normed_tl;

// The normed input and q / k / v of an attention stage over n rows: per-thread
// buffers, grown on demand and reused.
struct AttnScratch {
  float *h, *q, *k, *v;
};
AttnScratch attn_scratch(const ModelConfig& c, int n) {
  thread_local std::vector<float> qb, kb, vb;
  return {scratch(normed_tl, (size_t)n * c.hidden), scratch(qb, (size_t)n * c.q_dim()),
          scratch(kb, (size_t)n * c.kv_dim()), scratch(vb, (size_t)n * c.kv_dim())};
}

// Stage 1 with an optional cache (see layer_forward for the cache contract).
void attention_stage(const ModelConfig& c, const Rope& rope, const LayerWeights& L, int layer,
                     const float* x, int n_seq, int seq_len, KVCache* cache, float* att,
                     Capture* cap) {
  BWLA_ASSERT(!cache || n_seq == 1, "cache with {} segments", n_seq);
  const int n = n_seq * seq_len, H = c.hidden, qd = c.q_dim(), kvd = c.kv_dim();
  const AttnScratch sc = attn_scratch(c, n);
  // Plain locals, not a structured binding: lambdas below capture them.
  float *h = sc.h, *q = sc.q, *k = sc.k, *v = sc.v;
  rmsnorm(x, L.attn_norm.data(), h, n, H, c.rms_eps);
  if (cap) {
    cap->tensor(layer, "attn_norm", h, n, H);
    cap->linear_input(layer, 0, h, n, H);
  }
  qkv_projections(c, L, h, n, q, k, v);
  for (int s = 0; s < n_seq; ++s) {
    const size_t off = (size_t)s * seq_len;
    const int p0 = cache ? cache->pos : 0;
    rope.apply(q + off * qd, seq_len, c.n_heads, p0);
    rope.apply(k + off * kvd, seq_len, c.n_kv_heads, p0);
    if (cache) {
      BWLA_CHECK(p0 + seq_len <= cache->max_ctx,
                 "context overflow: {} cached + {} new tokens exceeds the context size {}", p0,
                 seq_len, cache->max_ctx);
      std::memcpy(cache->k[layer].data() + (size_t)p0 * kvd, k, sizeof(float) * seq_len * kvd);
      std::memcpy(cache->v[layer].data() + (size_t)p0 * kvd, v, sizeof(float) * seq_len * kvd);
      if (seq_len >= 16)
        attend_prefill(c, q, cache->k[layer].data(), cache->v[layer].data(), 0, 1, seq_len, p0, att);
      else
        attend(c, q, cache->k[layer].data(), cache->v[layer].data(), seq_len, p0, att);
    }
  }
  if (!cache) {
    if (seq_len >= 16) {
      attend_prefill(c, q, k, v, (long)seq_len * kvd, n_seq, seq_len, 0, att);
    } else {
      for (int s = 0; s < n_seq; ++s) {
        const size_t off = (size_t)s * seq_len;
        attend(c, q + off * qd, k + off * kvd, v + off * kvd, seq_len, 0, att + off * qd);
      }
    }
  }
  if (cap) {
    cap->tensor(layer, "q", q, n, qd);
    cap->tensor(layer, "k", k, n, kvd);
    cap->tensor(layer, "v", v, n, kvd);
    cap->tensor(layer, "attn", att, n, qd);
    cap->linear_input(layer, 1, att, n, qd);
  }
}

// x += lin(in): the residual add after o_proj / down_proj.
void residual_linear(const Linear& lin, const float* in, int n, int H, float* x, int layer,
                     const char* name, Capture* cap) {
  thread_local std::vector<float> ob;
  float* o = scratch(ob, (size_t)n * H);
  lin.forward(in, n, o);
  if (cap) cap->tensor(layer, name, o, n, H);
  for (size_t i = 0; i < (size_t)n * H; ++i) x[i] += o[i];
}

}  // namespace

namespace {

// Attention stage of one decode step for n rows, row i its own sequence with
// cache caches[i] (see forward_decode_batch).
void attention_decode_rows(const ModelConfig& c, const Rope& rope, const LayerWeights& L,
                           int layer, const float* x, int n, KVCache* const* caches, float* att) {
  const int H = c.hidden, qd = c.q_dim(), kvd = c.kv_dim();
  const AttnScratch sc = attn_scratch(c, n);
  // Plain locals, not a structured binding: lambdas below capture them.
  float *h = sc.h, *q = sc.q, *k = sc.k, *v = sc.v;
  rmsnorm(x, L.attn_norm.data(), h, n, H, c.rms_eps);
  qkv_projections(c, L, h, n, q, k, v);
  for (int i = 0; i < n; ++i) {
    KVCache& kc = *caches[i];
    const int p = kc.pos;
    BWLA_CHECK(p + 1 <= kc.max_ctx,
               "context overflow: {} cached + 1 new token exceeds the context size {}", p,
               kc.max_ctx);
    rope.apply(q + (size_t)i * qd, 1, c.n_heads, p);
    rope.apply(k + (size_t)i * kvd, 1, c.n_kv_heads, p);
    std::memcpy(kc.k[layer].data() + (size_t)p * kvd, k + (size_t)i * kvd, sizeof(float) * kvd);
    std::memcpy(kc.v[layer].data() + (size_t)p * kvd, v + (size_t)i * kvd, sizeof(float) * kvd);
  }
  // (row, head) tasks; each is exactly what attend() computes for that row.
  const int hd = c.head_dim, nh = c.n_heads, group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  const int win = c.sliding_window;
  long work = 0;
  for (int i = 0; i < n; ++i) work += (long)nh * (caches[i]->pos + 1) * hd;
  const bool par = work >= (1L << 16) && !omp_in_parallel();
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int task = 0; task < n * nh; ++task) {
    const int i = task / nh, hh = task % nh, g = hh / group;
    const KVCache& kc = *caches[i];
    const int p = kc.pos, j0 = win > 0 ? std::max(0, p - win + 1) : 0;
    thread_local std::vector<float> s;
    if (s.size() < (size_t)(p + 1 - j0)) s.resize((size_t)(p + 1 - j0));
    attn_head(q + (size_t)i * qd + hh * hd, kc.k[layer].data() + (size_t)j0 * kvd + g * hd, kvd,
              kc.v[layer].data() + (size_t)j0 * kvd + g * hd, kvd, p + 1 - j0, hd, scale,
              s.data(), att + (size_t)i * qd + hh * hd);
  }
}

}  // namespace

void layer_attention(const ModelConfig& c, const Rope& rope, const LayerWeights& L, int layer,
                     const float* x, int n_seq, int seq_len, float* att, Capture* cap) {
  attention_stage(c, rope, L, layer, x, n_seq, seq_len, nullptr, att, cap);
}

void layer_attn_residual(const ModelConfig& c, const LayerWeights& L, int layer, const float* att,
                         int n, float* x, Capture* cap) {
  residual_linear(*L.lin[kO], att, n, c.hidden, x, layer, "attn_out", cap);
}

void layer_mlp_act(const ModelConfig& c, const LayerWeights& L, int layer, const float* x, int n,
                   float* act, Capture* cap) {
  const int H = c.hidden, F = c.intermediate;
  thread_local std::vector<float> ub;
  float* h = scratch(normed_tl, (size_t)n * H);
  float* u = scratch(ub, (size_t)n * F);
  rmsnorm(x, L.mlp_norm.data(), h, n, H, c.rms_eps);
  if (cap) {
    cap->tensor(layer, "mlp_norm", h, n, H);
    cap->linear_input(layer, 2, h, n, H);
  }
  {
    const Linear* lins[2] = {L.lin[kGate].get(), L.lin[kUp].get()};
    float* ys[2] = {act, u};
    forward_same_input(lins, ys, 2, h, n);
  }
  silu_mul(act, u, (long)n * F);
  if (cap) {
    cap->tensor(layer, "mlp_act", act, n, F);
    cap->linear_input(layer, 3, act, n, F);
  }
}

void layer_mlp_residual(const ModelConfig& c, const LayerWeights& L, int layer, const float* act,
                        int n, float* x, Capture* cap) {
  residual_linear(*L.lin[kDown], act, n, c.hidden, x, layer, "mlp_out", cap);
  if (cap) cap->tensor(layer, "out", x, n, c.hidden);
}

void layer_forward(const ModelConfig& c, const Rope& rope, const LayerWeights& L, int layer,
                   float* x, int n_seq, int seq_len, KVCache* cache, Capture* cap) {
  const int n = n_seq * seq_len;
  thread_local std::vector<float> attb, actb;
  float* att = scratch(attb, (size_t)n * c.q_dim());
  attention_stage(c, rope, L, layer, x, n_seq, seq_len, cache, att, cap);
  layer_attn_residual(c, L, layer, att, n, x, cap);
  float* act = scratch(actb, (size_t)n * c.intermediate);
  layer_mlp_act(c, L, layer, x, n, act, cap);
  layer_mlp_residual(c, L, layer, act, n, x, cap);
}

void embed_tokens(const Model& m, const int* tokens, int n, float* x) {
  const int H = m.cfg.hidden;
  for (int t = 0; t < n; ++t) {
    BWLA_CHECK(tokens[t] >= 0 && tokens[t] < m.cfg.vocab, "token id {} out of range [0, {})",
               tokens[t], m.cfg.vocab);
    m.embed_row(tokens[t], x + (size_t)t * H);
  }
}

void forward_tokens(const Model& m, const int* tokens, int n, KVCache& cache, float* logits,
                    bool all_logits, Capture* cap) {
  const auto& c = m.cfg;
  BWLA_CHECK(n > 0, "forward called with no tokens");
  BWLA_CHECK(cache.pos + n <= cache.max_ctx,
             "context overflow: {} cached + {} new tokens exceeds the context size {}", cache.pos,
             n, cache.max_ctx);
  std::vector<float> x((size_t)n * c.hidden);
  embed_tokens(m, tokens, n, x.data());
  for (int l = 0; l < c.n_layers; ++l) {
    BWLA_ASSERT(m.layers[l].lin[kQ], "layer {} not loaded", l);
    layer_forward(c, *m.rope, m.layers[l], l, x.data(), 1, n, &cache, cap);
  }
  cache.pos += n;
  if (!logits) return;
  const int rows = all_logits ? n : 1;
  const float* src = x.data() + (size_t)(n - rows) * c.hidden;
  std::vector<float> h((size_t)rows * c.hidden);
  rmsnorm(src, m.final_norm.data(), h.data(), rows, c.hidden, c.rms_eps);
  m.lm_head->forward(h.data(), rows, logits);
}

void forward_decode_batch(const Model& m, const int* tokens, int n, KVCache* const* caches,
                          float* logits) {
  const auto& c = m.cfg;
  BWLA_CHECK(n > 0, "decode batch with no tokens");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < i; ++j)
      BWLA_ASSERT(caches[i] != caches[j], "decode batch rows {} and {} share one cache", j, i);
  std::vector<float> x((size_t)n * c.hidden);
  embed_tokens(m, tokens, n, x.data());
  thread_local std::vector<float> attb, actb;
  float* att = scratch(attb, (size_t)n * c.q_dim());
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = m.layers[l];
    BWLA_ASSERT(L.lin[kQ], "layer {} not loaded", l);
    attention_decode_rows(c, *m.rope, L, l, x.data(), n, caches, att);
    layer_attn_residual(c, L, l, att, n, x.data(), nullptr);
    float* act = scratch(actb, (size_t)n * c.intermediate);
    layer_mlp_act(c, L, l, x.data(), n, act, nullptr);
    layer_mlp_residual(c, L, l, act, n, x.data(), nullptr);
  }
  for (int i = 0; i < n; ++i) ++caches[i]->pos;
  std::vector<float> h((size_t)n * c.hidden);
  rmsnorm(x.data(), m.final_norm.data(), h.data(), n, c.hidden, c.rms_eps);
  m.lm_head->forward(h.data(), n, logits);
}

}  // namespace bwla
