// Helpers shared by the kernel tests: ISA iteration and random data.
#pragma once
#include <gtest/gtest.h>

#include <vector>

#include "core/cpu.h"
#include "core/rng.h"

namespace bwla::test {

// Restores the active ISA when leaving scope.
struct IsaGuard {
  Isa saved = active_isa();
  ~IsaGuard() { set_active_isa(saved); }
};

// ISA levels this CPU supports, lowest first.
inline std::vector<Isa> available_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if ((int)i <= (int)best_isa()) v.push_back(i);
  return v;
}

inline std::vector<float> random_floats(Rng& rng, size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = rng.uniformf(lo, hi);
  return v;
}

}  // namespace bwla::test
