#include "quant/hadamard.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"

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

HadamardTransform::HadamardTransform(int dim, uint64_t seed) : dim_(dim), seed_(seed) {
  BWLA_CHECK(dim > 0, "Hadamard transform: dim must be positive, got {}", dim);
  p_ = 1;
  while (dim % (2 * p_) == 0) p_ *= 2;
  m_ = dim / p_;
  Rng rng(seed ^ 0x48414441u /* "HADA" */);
  signs_.resize(p_);
  for (int i = 0; i < p_; ++i) signs_[i] = (rng.next_u64() >> 63) ? -1.0f : 1.0f;
  if (m_ > 1) {
    MatrixD g(m_, m_);
    for (int i = 0; i < m_; ++i)
      for (int j = 0; j < m_; ++j) g(i, j) = rng.normal();
    Eigen::HouseholderQR<MatrixD> qr(g);
    MatrixD q = qr.householderQ();
    const MatrixD& r = qr.matrixQR();
    for (int j = 0; j < m_; ++j)
      if (r(j, j) < 0) q.col(j) = -q.col(j);
    q_ = q.cast<float>();
  }
}

void HadamardTransform::apply_rows(float* x, long rows) const {
  const float norm = 1.0f / std::sqrt((float)p_);
#pragma omp parallel for schedule(static) if (rows >= 16)
  for (long r = 0; r < rows; ++r) {
    float* v = x + r * (long)dim_;
    if (m_ > 1) {  // V -> V·Qᵀ (each row of V multiplied by Q)
      Eigen::Map<MatrixRM> vm(v, p_, m_);
      MatrixRM t = vm * q_.transpose();
      vm = t;
    }
    for (int i = 0; i < p_; ++i) {
      const float s = signs_[i] * norm;
      for (int j = 0; j < m_; ++j) v[(long)i * m_ + j] *= s;
    }
    fwht_rows(v, p_, m_);
  }
}

void HadamardTransform::apply_rows_inverse(float* x, long rows) const {
  const float norm = 1.0f / std::sqrt((float)p_);
#pragma omp parallel for schedule(static) if (rows >= 16)
  for (long r = 0; r < rows; ++r) {
    float* v = x + r * (long)dim_;
    fwht_rows(v, p_, m_);
    for (int i = 0; i < p_; ++i) {
      const float s = signs_[i] * norm;
      for (int j = 0; j < m_; ++j) v[(long)i * m_ + j] *= s;
    }
    if (m_ > 1) {  // V -> V·Q
      Eigen::Map<MatrixRM> vm(v, p_, m_);
      MatrixRM t = vm * q_;
      vm = t;
    }
  }
}

std::unique_ptr<InputTransform> make_random_hadamard(int dim, uint64_t seed) {
  return std::make_unique<HadamardTransform>(dim, seed);
}

}  // namespace bwla
