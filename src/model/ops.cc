#include "model/ops.h"

#include <algorithm>
#include <cmath>

namespace bwla {

void rmsnorm(const float* x, const float* w, float* out, int n, int dim, double eps) {
#pragma omp parallel for schedule(static) if ((long)n * dim >= 32768)
  for (int t = 0; t < n; ++t) {
    const float* xr = x + (size_t)t * dim;
    float* o = out + (size_t)t * dim;
    float ss = 0.f;
    for (int i = 0; i < dim; ++i) ss += xr[i] * xr[i];
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
    for (int i = 0; i < half; ++i) {
      float a = pos * inv_freq_[i];
      cp[i] = std::cos(a);
      sp[i] = std::sin(a);
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
  // libm expf costs ~8 ns: one decode token's 5632-wide gate (TinyLlama) is
  // worth splitting over threads (it was ~2.5 % of 2-thread packed decode, serial).
#pragma omp parallel for schedule(static) if (n >= 4096)
  for (long i = 0; i < n; ++i) {
    float g = a[i];
    a[i] = g / (1.0f + std::exp(-g)) * b[i];
  }
}

void softmax(float* x, int n) {
  float m = *std::max_element(x, x + n);
  float s = 0.f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  float inv = 1.0f / s;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace bwla
