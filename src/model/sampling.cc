#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace bwla {

int argmax(const float* x, int n) { return (int)(std::max_element(x, x + n) - x); }

int Sampler::sample(float* logits, int vocab) {
  if (p_.temperature <= 0.f) return argmax(logits, vocab);
  std::vector<int> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  int k = (p_.top_k > 0 && p_.top_k < vocab) ? p_.top_k : vocab;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return logits[a] > logits[b]; });
  idx.resize(k);
  std::vector<double> pr(k);
  const double m = logits[idx[0]];
  double sum = 0;
  for (int i = 0; i < k; ++i) sum += pr[i] = std::exp((logits[idx[i]] - m) / p_.temperature);
  for (auto& x : pr) x /= sum;
  if (p_.top_p < 1.f) {
    double c = 0;
    int keep = k;
    for (int i = 0; i < k; ++i) {
      c += pr[i];
      if (c >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    pr.resize(keep);
    idx.resize(keep);
    double s = std::accumulate(pr.begin(), pr.end(), 0.0);
    for (auto& x : pr) x /= s;
  }
  double r = rng_.uniform(), c = 0;
  for (size_t i = 0; i < pr.size(); ++i) {
    c += pr[i];
    if (r < c) return idx[i];
  }
  return idx.back();
}

}  // namespace bwla
