// Weighted error of closed-form XNOR binarization (BiLLM's group searches).
// For a group of values v with weights ω, the XNOR fit is μ = mean(v),
// α = mean|v − μ| (unweighted, as applied), and its error is
// Σ ω_i (v_i − v̂_i)², v̂_i = μ ± α.
#pragma once
#include <cstdint>
#include <vector>

namespace bwla {

// Entries with sel[i] != want are skipped (sel == nullptr: all).
double wxnor_err(const float* v, const float* om, int n, const uint8_t* sel = nullptr,
                 uint8_t want = 1);

// One row's values sorted ascending with prefix sums of 1, v, ω, ωv, ωv², so that
// the error of a group made of contiguous ranges of the sorted row costs O(log n).
// The magnitude split |v| ≤ t is the range [lo, hi) of values in [−t, t] plus its
// complement [0, lo) ∪ [hi, n); split_err equals
// wxnor_err(sel = 1) + wxnor_err(sel = 2) with sel_i = |v_i| ≤ t ? 1 : 2.
class SortedRow {
 public:
  void build(const float* v, const float* om, int n);
  double split_err(float thr) const;

 private:
  double group_err(const int rg[2][2]) const;
  std::vector<int> perm_;
  std::vector<float> v_;
  std::vector<double> pv_, po_, pov_, pov2_;
};

}  // namespace bwla
