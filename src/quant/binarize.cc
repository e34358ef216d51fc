#include "quant/binarize.h"

#include <cmath>

namespace bwla {

BinaryFit xnor_fit(const float* v, int n) {
  BinaryFit f;
  if (n <= 0) return f;
  double s = 0;
  for (int i = 0; i < n; ++i) s += v[i];
  const double mu = s / n;
  double a = 0;
  for (int i = 0; i < n; ++i) a += std::fabs(v[i] - mu);
  f.mu = (float)mu;
  f.alpha = (float)(a / n);
  return f;
}

double binary_sq_error(const float* v, int n, BinaryFit f) {
  double e = 0;
  for (int i = 0; i < n; ++i) {
    const double d = (double)v[i] - (double)f(v[i]);
    e += d * d;
  }
  return e;
}

void binary_apply(const float* v, int n, BinaryFit f, float* out) {
  for (int i = 0; i < n; ++i) out[i] = f(v[i]);
}

BinaryFit arb_fit(const float* v, int n, int iters, std::vector<double>* trace) {
  BinaryFit f = xnor_fit(v, n);
  if (trace) {
    trace->clear();
    trace->push_back(binary_sq_error(v, n, f));
  }
  if (n <= 0) return f;
  double mu = f.mu, alpha = f.alpha;
  for (int it = 0; it < iters; ++it) {
    // b = sign(v − μ) is current. μ-step.
    double s = 0, sb = 0;
    for (int i = 0; i < n; ++i) {
      const double b = v[i] >= (float)mu ? 1.0 : -1.0;
      s += v[i];
      sb += b;
    }
    // b is evaluated against the μ it was defined with (float compare, as applied).
    const double mu_new = (s - alpha * sb) / n;
    // α-step with the same b.
    double sa = 0;
    for (int i = 0; i < n; ++i) {
      const double b = v[i] >= (float)mu ? 1.0 : -1.0;
      sa += b * (v[i] - mu_new);
    }
    mu = mu_new;
    alpha = std::fabs(sa / n);
    // b-step is implicit: b = sign(v − μ) under the new μ.
    f.mu = (float)mu;
    f.alpha = (float)alpha;
    if (trace) trace->push_back(binary_sq_error(v, n, f));
  }
  return f;
}

double arb_rc_fit(const MatrixRM& w, const GroupIds& gid, int g, int iters, bool with_mu,
                  MatrixRM& w_hat, std::vector<double>* trace, ArbRcFit* fit) {
  const long R = w.rows(), C = w.cols();
  std::vector<double> a(R, 0.0), mu(R, 0.0), c(C, 1.0);
  std::vector<long> cnt(R, 0);
  // Start: per-row XNOR fit (μ = mean, a = mean|w − μ|), c = 1.
  for (long i = 0; i < R; ++i) {
    double s = 0;
    long n = 0;
    for (long j = 0; j < C; ++j)
      if (gid(i, j) == g) s += w(i, j), ++n;
    cnt[i] = n;
    if (!n) continue;
    mu[i] = with_mu ? s / n : 0.0;
    double sa = 0;
    for (long j = 0; j < C; ++j)
      if (gid(i, j) == g) sa += std::fabs(w(i, j) - mu[i]);
    a[i] = sa / n;
  }
  // b_ij = sign(a_i c_j (w_ij − μ_i)) — the exact minimiser given the others.
  auto sgn = [&](long i, long j) {
    const double r = ((double)w(i, j) - mu[i]) * a[i] * c[j];
    return r >= 0 ? 1.0 : -1.0;
  };
  Eigen::Matrix<int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> b(R, C);
  auto update_b = [&]() {
    for (long i = 0; i < R; ++i)
      for (long j = 0; j < C; ++j) b(i, j) = (int8_t)sgn(i, j);
  };
  auto error = [&]() {
    double e = 0;
    for (long i = 0; i < R; ++i)
      for (long j = 0; j < C; ++j)
        if (gid(i, j) == g) {
          const double d = w(i, j) - (a[i] * b(i, j) * c[j] + mu[i]);
          e += d * d;
        }
    return e;
  };
  update_b();
  if (trace) {
    trace->clear();
    trace->push_back(error());
  }
  std::vector<double> num(C), den(C);
  for (int it = 0; it < iters; ++it) {
    // μ-step
    if (with_mu)
      for (long i = 0; i < R; ++i) {
        if (!cnt[i]) continue;
        double s = 0;
        for (long j = 0; j < C; ++j)
          if (gid(i, j) == g) s += w(i, j) - a[i] * b(i, j) * c[j];
        mu[i] = s / cnt[i];
      }
    // row-scale step
    for (long i = 0; i < R; ++i) {
      double n = 0, d = 0;
      for (long j = 0; j < C; ++j)
        if (gid(i, j) == g) n += b(i, j) * c[j] * (w(i, j) - mu[i]), d += c[j] * c[j];
      a[i] = d > 0 ? n / d : 0.0;
    }
    // column-scale step
    std::fill(num.begin(), num.end(), 0.0);
    std::fill(den.begin(), den.end(), 0.0);
    for (long i = 0; i < R; ++i)
      for (long j = 0; j < C; ++j)
        if (gid(i, j) == g) {
          num[j] += b(i, j) * a[i] * (w(i, j) - mu[i]);
          den[j] += a[i] * a[i];
        }
    for (long j = 0; j < C; ++j) c[j] = den[j] > 0 ? num[j] / den[j] : c[j];
    update_b();
    if (trace) trace->push_back(error());
  }
  double e = 0;
  for (long i = 0; i < R; ++i)
    for (long j = 0; j < C; ++j)
      if (gid(i, j) == g) {
        const float v = (float)(a[i] * b(i, j) * c[j] + mu[i]);
        w_hat(i, j) = v;
        const double d = w(i, j) - v;
        e += d * d;
      }
  if (fit) {
    fit->a = std::move(a);
    fit->mu = std::move(mu);
    fit->c = std::move(c);
    fit->b = std::move(b);
  }
  return e;
}

}  // namespace bwla
