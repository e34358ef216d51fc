#include "model/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/vexp.h"

namespace bwla {

void rmsnorm(const float* x, const float* w, float* out, int n, int dim, double eps) {
#pragma omp parallel for schedule(static) if ((long)n * dim >= 32768)
  for (int t = 0; t < n; ++t) {
    const float* xr = x + (size_t)t * dim;
    float* o = out + (size_t)t * dim;
    // 16 interleaved partial sums and a fixed tree: one serial chain of `dim`
    // dependent adds was ~4.5 µs per 2048-wide decode row; any ISA vectorizes this.
    float acc[16] = {};
    int i = 0;
    for (; i + 16 <= dim; i += 16)
      for (int k = 0; k < 16; ++k) acc[k] += xr[i + k] * xr[i + k];
    for (; i < dim; ++i) acc[i % 16] += xr[i] * xr[i];
    for (int w = 8; w >= 1; w /= 2)
      for (int l = 0; l < w; ++l) acc[l] = acc[l] + acc[l + w];
    const float ss = acc[0];
    float r = 1.0f / std::sqrt(ss / (float)dim + (float)eps);
    for (int i = 0; i < dim; ++i) o[i] = xr[i] * r * w[i];
  }
}

std::vector<float> rope_inv_freq(const ModelConfig& cfg) {
  const int d = cfg.head_dim;
  std::vector<float> f(d / 2);
  for (int i = 0; i < d / 2; ++i)
    f[i] = (float)(1.0 / std::pow(cfg.rope_theta, (double)(2 * i) / (double)d));
  const RopeScaling& s = cfg.rope_scaling;
  if (s.type == "llama3") {
    const double old = s.original_max_position;
    const double low_wl = old / s.low_freq_factor, high_wl = old / s.high_freq_factor;
    for (auto& fr : f) {
      double wl = 2.0 * M_PI / fr;
      if (wl < high_wl) continue;
      if (wl > low_wl) {
        fr = (float)(fr / s.factor);
      } else {
        double smooth = (old / wl - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        fr = (float)((1 - smooth) * fr / s.factor + smooth * fr);
      }
    }
  }
  return f;
}

Rope::Rope(const ModelConfig& cfg) : head_dim_(cfg.head_dim), inv_freq_(rope_inv_freq(cfg)) {}

void Rope::apply(float* x, int n, int n_heads, int pos0) const {
  const int half = head_dim_ / 2;
#pragma omp parallel for schedule(static) if ((long)n * n_heads * head_dim_ >= 32768)
  for (int t = 0; t < n; ++t) {
    float cs[512], sn[512];
    float* cp = half <= 512 ? cs : nullptr;
    std::vector<float> cbig, sbig;
    float* sp = sn;
    if (!cp) {
      cbig.resize(half);
      sbig.resize(half);
      cp = cbig.data();
      sp = sbig.data();
    }
    const float pos = (float)(pos0 + t);
    // Decode rotates q and then k at the same position: keep the last angles
    // (keyed by the frequencies' values, not their address, which a later Rope
    // may reuse).
    thread_local std::vector<float> last_freq;
    thread_local float last_pos = -1.0f;
    thread_local std::vector<float> last_cs, last_sn;
    if (last_pos == pos && last_freq == inv_freq_) {
      std::copy(last_cs.begin(), last_cs.end(), cp);
      std::copy(last_sn.begin(), last_sn.end(), sp);
    } else {
      for (int i = 0; i < half; ++i) {
        float a = pos * inv_freq_[i];
        cp[i] = std::cos(a);
        sp[i] = std::sin(a);
      }
      last_freq = inv_freq_;
      last_pos = pos;
      last_cs.assign(cp, cp + half);
      last_sn.assign(sp, sp + half);
    }
    float* row = x + (size_t)t * n_heads * head_dim_;
    for (int h = 0; h < n_heads; ++h) {
      float* v = row + (size_t)h * head_dim_;
      for (int i = 0; i < half; ++i) {
        float a = v[i], b = v[i + half];
        v[i] = a * cp[i] - b * sp[i];
        v[i + half] = b * cp[i] + a * sp[i];
      }
    }
  }
}

void silu_mul(float* a, const float* b, long n) {
  // kernels/vexp.h: ~0.3 ns per element on AVX-512 (libm expf was ~8 ns), so a
  // decode token's 5632-wide gate runs on one thread; prefill's are split.
  constexpr long kChunk = 16384;
  const long chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks >= 4)
  for (long c = 0; c < chunks; ++c)
    silu_mul_vec(a + c * kChunk, b + c * kChunk, std::min(kChunk, n - c * kChunk));
}

void softmax(float* x, int n) { softmax_vec(x, n); }

}  // namespace bwla
