#include "kernels/hadamard.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/kron.h"

namespace bwla {

void fwht_rows(float* x, int p, int m) {
  if (m == 1) {  // scalar butterflies; the inner loop is contiguous and vectorises
    for (int h = 1; h < p; h *= 2)
      for (int i = 0; i < p; i += 2 * h) {
        float* a = x + i;
        float* b = x + i + h;
        for (int r = 0; r < h; ++r) {
          const float u = a[r], v = b[r];
          a[r] = u + v;
          b[r] = u - v;
        }
      }
    return;
  }
  for (int h = 1; h < p; h *= 2) {
    for (int i = 0; i < p; i += 2 * h) {
      for (int r = i; r < i + h; ++r) {
        float* a = x + (long)r * m;
        float* b = x + (long)(r + h) * m;
        for (int j = 0; j < m; ++j) {
          const float u = a[j], v = b[j];
          a[j] = u + v;
          b[j] = u - v;
        }
      }
    }
  }
}

std::vector<double> orthogonal_factor(std::vector<double> g, int n) {
  BWLA_CHECK(n > 0 && g.size() == (size_t)n * n, "orthogonal_factor: {} values for {}x{}", g.size(),
             n, n);
  // Column k: the reflection H_k = I - 2·v·vᵀ (v unit, zero above k) maps
  // g[k:, k] to r_kk·e_k with r_kk = -sign(g_kk)·‖g[k:, k]‖ (no cancellation
  // in v_k = g_kk - r_kk); then Q = H_0·H_1·…·H_{n-1}.
  std::vector<double> vs((size_t)n * n, 0.0), rdiag(n);
  auto G = [&](int i, int j) -> double& { return g[(size_t)i * n + j]; };
  for (int k = 0; k < n; ++k) {
    double norm2 = 0;
    for (int i = k; i < n; ++i) norm2 += G(i, k) * G(i, k);
    const double norm = std::sqrt(norm2);
    double* v = &vs[(size_t)k * n];
    if (norm == 0) {  // a zero column: no reflection
      rdiag[k] = 0;
      continue;
    }
    const double r = G(k, k) >= 0 ? -norm : norm;
    rdiag[k] = r;
    for (int i = k; i < n; ++i) v[i] = G(i, k);
    v[k] -= r;
    double vn2 = 0;
    for (int i = k; i < n; ++i) vn2 += v[i] * v[i];
    const double inv = 1.0 / std::sqrt(vn2);
    for (int i = k; i < n; ++i) v[i] *= inv;
    for (int j = k; j < n; ++j) {  // g[k:, j] -= 2·v·(vᵀ·g[k:, j])
      double d = 0;
      for (int i = k; i < n; ++i) d += v[i] * G(i, j);
      for (int i = k; i < n; ++i) G(i, j) -= 2 * d * v[i];
    }
  }
  std::vector<double> q((size_t)n * n, 0.0);
  auto Q = [&](int i, int j) -> double& { return q[(size_t)i * n + j]; };
  for (int i = 0; i < n; ++i) Q(i, i) = 1;
  for (int k = n - 1; k >= 0; --k) {  // Q = H_k·Q, applied from the last reflection
    const double* v = &vs[(size_t)k * n];
    for (int j = 0; j < n; ++j) {
      double d = 0;
      for (int i = k; i < n; ++i) d += v[i] * Q(i, j);
      for (int i = k; i < n; ++i) Q(i, j) -= 2 * d * v[i];
    }
  }
  for (int j = 0; j < n; ++j)
    if (rdiag[j] < 0)
      for (int i = 0; i < n; ++i) Q(i, j) = -Q(i, j);
  return q;
}

HadamardTransform::HadamardTransform(int dim, uint64_t seed) : dim_(dim), seed_(seed) {
  BWLA_CHECK(dim > 0, "Hadamard transform: dim must be positive, got {}", dim);
  p_ = 1;
  while (dim % (2 * p_) == 0) p_ *= 2;
  m_ = dim / p_;
  Rng rng(seed ^ 0x48414441u /* "HADA" */);
  signs_.resize(p_);
  for (int i = 0; i < p_; ++i) signs_[i] = (rng.next_u64() >> 63) ? -1.0f : 1.0f;
  if (m_ > 1) {
    std::vector<double> g((size_t)m_ * m_);
    for (double& e : g) e = rng.normal();  // row-major, the generator's order
    const std::vector<double> q = orthogonal_factor(std::move(g), m_);
    q_.resize(q.size());
    qt_.resize(q.size());
    for (int i = 0; i < m_; ++i)
      for (int j = 0; j < m_; ++j) {
        q_[(size_t)i * m_ + j] = (float)q[(size_t)i * m_ + j];
        qt_[(size_t)j * m_ + i] = (float)q[(size_t)i * m_ + j];
      }
  }
}

namespace {

// v (p×m) -> v·M for an m×m row-major M; t holds p·m floats.
void times_matrix(float* v, int p, int m, const std::vector<float>& mat, std::vector<float>& t) {
  kron_stage1(v, t.data(), 0, p, mat.data(), m);
  std::copy(t.begin(), t.end(), v);
}

// Row i of v (p×m) times D_i/√p.
void scale_rows(float* v, int p, int m, const std::vector<float>& signs) {
  const float norm = 1.0f / std::sqrt((float)p);
  for (int i = 0; i < p; ++i) {
    const float s = signs[i] * norm;
    for (int j = 0; j < m; ++j) v[(long)i * m + j] *= s;
  }
}

}  // namespace

// R·v = vec(A·V·Q_mᵀ) with A = H_p·D/√p: V·Q_mᵀ, then D/√p, then H_p;
// the inverse runs the transposes in the reverse order.
void HadamardTransform::apply(float* x, long rows, bool inverse) const {
#pragma omp parallel if (rows >= 16)
  {
    thread_local std::vector<float> t;  // reused: decode applies R once per token
    if (m_ > 1) t.resize((size_t)dim_);
#pragma omp for schedule(static)
    for (long r = 0; r < rows; ++r) {
      float* v = x + r * (long)dim_;
      if (!inverse && m_ > 1) times_matrix(v, p_, m_, qt_, t);
      if (inverse) fwht_rows(v, p_, m_);
      scale_rows(v, p_, m_, signs_);
      if (!inverse) fwht_rows(v, p_, m_);
      if (inverse && m_ > 1) times_matrix(v, p_, m_, q_, t);
    }
  }
}

std::unique_ptr<InputTransform> make_random_hadamard(int dim, uint64_t seed) {
  return std::make_unique<HadamardTransform>(dim, seed);
}

}  // namespace bwla
