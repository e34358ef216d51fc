#include "quant/dist_stats.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"

namespace bwla {

DistStats row_dist_stats(const MatrixRM& w, double near_tol) {
  BWLA_CHECK(w.rows() > 0 && w.cols() > 1, "row_dist_stats: need >= 1 row and >= 2 cols, got {}x{}",
             w.rows(), w.cols());
  const long n = w.cols();
  // Per-row sums, added in row order below: the same at any thread count.
  std::vector<std::array<double, 3>> part(w.rows(), {0.0, 0.0, 0.0});
  long count = 0;
#pragma omp parallel for schedule(static) reduction(+ : count) if (w.size() >= (1L << 18))
  for (long i = 0; i < w.rows(); ++i) {
    const float* x = w.data() + i * n;
    double s3 = 0, s4 = 0, near = 0;
    double mu = 0;
    for (long j = 0; j < n; ++j) mu += x[j];
    mu /= (double)n;
    double v = 0, c = 0;
    for (long j = 0; j < n; ++j) {
      const double d = x[j] - mu;
      v += d * d;
      c += std::fabs(d);
    }
    v /= (double)n;
    c /= (double)n;
    if (!(v > 0)) continue;
    const double inv = 1.0 / std::sqrt(v);
    for (long j = 0; j < n; ++j) {
      const double d = x[j] - mu;
      const double z = d * inv;
      s3 += z * z * z;
      s4 += z * z * z * z;
      if (std::fabs(std::fabs(d) - c) <= near_tol * c) near += 1;
    }
    part[i] = {s3, s4, near};
    count += n;
  }
  double s3 = 0, s4 = 0, near = 0;
  for (const auto& p : part) s3 += p[0], s4 += p[1], near += p[2];
  DistStats st;
  if (count == 0) return st;
  st.skewness = s3 / (double)count;
  st.kurtosis = s4 / (double)count;
  st.bimodality = st.kurtosis > 0 ? (st.skewness * st.skewness + 1.0) / st.kurtosis : 0.0;
  st.near_centre_mass = near / (double)count;
  return st;
}

ActStats activation_stats(const MatrixRM& x) {
  BWLA_CHECK(x.rows() > 0 && x.cols() > 1, "activation_stats: need >= 1 token and width >= 2, got {}x{}",
             x.rows(), x.cols());
  const long n = x.cols();
  std::vector<std::array<double, 2>> part(x.rows(), {0.0, 0.0});  // per token, as above
  double worst = 0;
  long tokens = 0, count = 0;
#pragma omp parallel for schedule(static) reduction(+ : tokens, count) reduction(max : worst) if (x.size() >= (1L << 18))
  for (long t = 0; t < x.rows(); ++t) {
    const float* p = x.data() + t * n;
    double sq = 0, mx = 0, mu = 0;
    for (long j = 0; j < n; ++j) {
      sq += (double)p[j] * p[j];
      mx = std::max(mx, (double)std::fabs(p[j]));
      mu += p[j];
    }
    const double rms = std::sqrt(sq / (double)n);
    if (!(rms > 0)) continue;
    part[t][0] = mx / rms;
    worst = std::max(worst, mx / rms);
    ++tokens;
    mu /= (double)n;
    double v = 0;
    for (long j = 0; j < n; ++j) v += (p[j] - mu) * (p[j] - mu);
    v /= (double)n;
    if (!(v > 0)) continue;
    double s4 = 0;
    for (long j = 0; j < n; ++j) {
      const double z = (p[j] - mu) / std::sqrt(v);
      s4 += z * z * z * z;
    }
    part[t][1] = s4;
    count += n;
  }
  double ratio = 0, s4 = 0;
  for (const auto& p : part) ratio += p[0], s4 += p[1];
  ActStats st;
  if (tokens > 0) st.max_over_rms = ratio / (double)tokens;
  if (count > 0) st.kurtosis = s4 / (double)count;
  st.worst_max_over_rms = worst;
  return st;
}

std::vector<long> histogram(const float* x, long n, float lo, float hi, int bins) {
  BWLA_CHECK(bins >= 1, "histogram: bins must be >= 1, got {}", bins);
  BWLA_CHECK(hi > lo, "histogram: need hi > lo, got [{}, {})", lo, hi);
  BWLA_CHECK(n == 0 || x != nullptr, "histogram: null data");
  std::vector<long> h(bins, 0);
  const double scale = (double)bins / ((double)hi - (double)lo);
  for (long i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    long b = (long)std::floor(((double)x[i] - lo) * scale);
    b = std::clamp(b, 0L, (long)bins - 1);
    ++h[b];
  }
  return h;
}

}  // namespace bwla
