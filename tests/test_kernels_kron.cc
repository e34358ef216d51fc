#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/kron.h"
#include "kernels_test_util.h"

using namespace bwla;
using bwla::test::available_isas;
using bwla::test::IsaGuard;
using bwla::test::random_floats;

namespace {
// Full (R1ᵀ ⊗ R2ᵀ)·x with the row-major vec convention, in double.
std::vector<double> kron_ref(const float* x, const std::vector<float>& R1, int n1,
                             const std::vector<float>& R2, int n2, std::vector<double>& mag) {
  const int n = n1 * n2;
  std::vector<double> y(n, 0.0);
  mag.assign(n, 0.0);
  for (int a = 0; a < n1; ++a)
    for (int b = 0; b < n2; ++b)
      for (int c = 0; c < n1; ++c)
        for (int d = 0; d < n2; ++d) {
          // y[a][b] = Σ_{c,d} R1[c][a] · V[c][d] · R2[d][b]
          const double p = (double)R1[c * n1 + a] * x[c * n2 + d] * R2[d * n2 + b];
          y[a * n2 + b] += p;
          mag[a * n2 + b] += std::fabs(p);
        }
  return y;
}
}  // namespace

TEST(Kron, MatchesExplicitKroneckerEveryIsa) {
  IsaGuard guard;
  Rng rng(9);
  for (auto [n1, n2] : {std::pair{1, 1}, {3, 5}, {4, 16}, {2, 70}, {8, 64}, {16, 33}, {32, 64}}) {
    const int n = n1 * n2, tokens = n1 % 2 ? 3 : 9;  // 9: the OpenMP path
    auto R1 = random_floats(rng, (size_t)n1 * n1, -1.0f, 1.0f);
    auto R2 = random_floats(rng, (size_t)n2 * n2, -1.0f, 1.0f);
    auto xb = random_floats(rng, (size_t)tokens * n + 1, -1.0f, 1.0f);
    const float* x = xb.data() + 1;  // misaligned
    std::vector<std::vector<double>> ref(tokens), mag(tokens);
    for (int t = 0; t < tokens; ++t) ref[t] = kron_ref(x + (size_t)t * n, R1, n1, R2, n2, mag[t]);
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      std::vector<float> y((size_t)tokens * n);
      kron_apply(x, y.data(), tokens, R1.data(), n1, R2.data(), n2);
      std::vector<float> inplace(xb.begin() + 1, xb.end());
      kron_apply(inplace.data(), inplace.data(), tokens, R1.data(), n1, R2.data(), n2);
      for (int t = 0; t < tokens; ++t)
        for (int i = 0; i < n; ++i) {
          ASSERT_NEAR(y[(size_t)t * n + i], ref[t][i], 1e-5 * mag[t][i] + 1e-6)
              << isa_name(isa) << " n1=" << n1 << " n2=" << n2 << " i=" << i;
          ASSERT_EQ(inplace[(size_t)t * n + i], y[(size_t)t * n + i]);
        }
    }
  }
}

// kron_stage1/kron_stage2 over any split of V's rows (as the threads of a
// region run them) give kron_apply's token, on every ISA.
TEST(Kron, StagesOverRowSplitsEqualKronApply) {
  IsaGuard guard;
  Rng rng(77);
  struct S { int n1, n2; };
  for (S s : {S{1, 1}, S{3, 5}, S{32, 64}, S{7, 9}, S{64, 88}}) {
    const int n = s.n1 * s.n2;
    auto R1 = random_floats(rng, (size_t)s.n1 * s.n1, -1.0f, 1.0f);
    auto R2 = random_floats(rng, (size_t)s.n2 * s.n2, -1.0f, 1.0f);
    auto x = random_floats(rng, (size_t)n, -1.0f, 1.0f);
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      std::vector<float> want(n);
      kron_apply(x.data(), want.data(), 1, R1.data(), s.n1, R2.data(), s.n2);
      for (int parts : {1, 2, 3, 5}) {
        std::vector<float> y = x, tmp(n, NAN);
        auto cut = [&](int p) { return (int)((long)s.n1 * p / parts); };
        for (int p = 0; p < parts; ++p) kron_stage1(y.data(), tmp.data(), cut(p), cut(p + 1), R2.data(), s.n2);
        for (int p = parts - 1; p >= 0; --p)  // any order: stage 2 reads only tmp
          kron_stage2(tmp.data(), y.data(), cut(p), cut(p + 1), R1.data(), s.n1, s.n2);
        for (int i = 0; i < n; ++i)
          ASSERT_NEAR(y[i], want[i], 1e-5f * (1.0f + std::fabs(want[i])))
              << isa_name(isa) << " " << s.n1 << "x" << s.n2 << " parts " << parts << " i " << i;
      }
    }
  }
}
