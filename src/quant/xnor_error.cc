#include "quant/xnor_error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace bwla {

// Σ ω_i (v_i − v̂_i)² for the closed-form XNOR fit of v (μ = mean, α =
// mean|v − μ|), in two passes: with d = v − μ, s = sign(d),
// Σω(d − αs)² = Σωd² − 2αΣω|d| + α²Σω and Σωd² = Σωv² − 2μΣωv + μ²Σω.
// Entries with sel[i] != want are skipped (sel == nullptr: all).
double wxnor_err(const float* v, const float* om, int n, const uint8_t* sel, uint8_t want) {
  double cnt = 0, sv = 0, sw = 0, swv = 0, swv2 = 0;
  for (int i = 0; i < n; ++i) {
    if (sel && sel[i] != want) continue;
    const double x = v[i], o = om[i];
    cnt += 1, sv += x, sw += o, swv += o * x, swv2 += o * x * x;
  }
  if (cnt == 0) return 0.0;
  const double mu = sv / cnt;
  double sa = 0, swa = 0;
  for (int i = 0; i < n; ++i) {
    if (sel && sel[i] != want) continue;
    const double a = std::fabs((double)v[i] - mu);
    sa += a, swa += om[i] * a;
  }
  const double alpha = sa / cnt;
  const double e = swv2 - 2 * mu * swv + mu * mu * sw - 2 * alpha * swa + alpha * alpha * sw;
  return std::max(e, 0.0);
}

void SortedRow::build(const float* v, const float* om, int n) {
  perm_.resize(n);
  std::iota(perm_.begin(), perm_.end(), 0);
  std::sort(perm_.begin(), perm_.end(), [&](int a, int b) { return v[a] < v[b]; });
  v_.resize(n);
  for (auto* p : {&pv_, &po_, &pov_, &pov2_}) p->assign(n + 1, 0.0);
  for (int q = 0; q < n; ++q) {
    const double x = v[perm_[q]], o = om[perm_[q]];
    v_[q] = v[perm_[q]];
    pv_[q + 1] = pv_[q] + x;
    po_[q + 1] = po_[q] + o;
    pov_[q + 1] = pov_[q] + o * x;
    pov2_[q + 1] = pov2_[q] + o * x * x;
  }
}

// Error of the two groups |v| ≤ thr and |v| > thr, each with its own XNOR fit.
double SortedRow::split_err(float thr) const {
  const int n = (int)v_.size();
  const int lo = (int)(std::lower_bound(v_.begin(), v_.end(), -thr) - v_.begin());
  const int hi = (int)(std::upper_bound(v_.begin(), v_.end(), thr) - v_.begin());
  const int inner[2][2] = {{lo, hi}, {hi, hi}};
  const int outer[2][2] = {{0, lo}, {hi, n}};
  return group_err(inner) + group_err(outer);
}

double SortedRow::group_err(const int rg[2][2]) const {
  double cnt = 0, sv = 0, sw = 0, swv = 0, swv2 = 0;
  for (int k = 0; k < 2; ++k) {
    const int a = rg[k][0], b = rg[k][1];
    cnt += b - a, sv += pv_[b] - pv_[a], sw += po_[b] - po_[a];
    swv += pov_[b] - pov_[a], swv2 += pov2_[b] - pov2_[a];
  }
  if (cnt == 0) return 0.0;
  const double mu = sv / cnt;
  double sa = 0, swa = 0;  // Σ|v − μ|, Σω|v − μ|
  for (int k = 0; k < 2; ++k) {
    const int a = rg[k][0], b = rg[k][1];
    if (a >= b) continue;
    const int m = std::clamp(
        (int)(std::lower_bound(v_.begin() + a, v_.begin() + b, mu,
                               [](float x, double y) { return (double)x < y; }) - v_.begin()),
        a, b);
    sa += mu * (m - a) - (pv_[m] - pv_[a]) + (pv_[b] - pv_[m]) - mu * (b - m);
    swa += mu * (po_[m] - po_[a]) - (pov_[m] - pov_[a]) + (pov_[b] - pov_[m]) - mu * (po_[b] - po_[m]);
  }
  const double alpha = sa / cnt;
  const double e = swv2 - 2 * mu * swv + mu * mu * sw - 2 * alpha * swa + alpha * alpha * sw;
  return std::max(e, 0.0);
}

}  // namespace bwla
