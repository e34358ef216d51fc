// PackedLinear's one-token path shared by the threads of one parallel region
// (forward_token_shared: transform, quantization, bit planes, low-rank branch
// and bias split over the team) against the serial path it replaces, which
// runs when only one thread is available.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/half.h"
#include "core/rng.h"
#include "runtime/packed_linear.h"
#include "kernels/hadamard.h"

using namespace bwla;

namespace {

std::vector<float> uniform(Rng& r, size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = lo + (hi - lo) * (float)r.uniform();
  return v;
}

// n×n row-major.
std::vector<float> signed_permutation(int n, Rng& r) {
  std::vector<int> p(n);
  for (int i = 0; i < n; ++i) p[i] = i;
  for (int i = n - 1; i > 0; --i) std::swap(p[i], p[r.below(i + 1)]);
  std::vector<float> m((size_t)n * n, 0.0f);
  for (int i = 0; i < n; ++i) m[(size_t)i * n + p[i]] = r.below(2) ? 1.0f : -1.0f;
  return m;
}

struct Case {
  int n1, n2, out, planes, rank;
  bool f16, bias;
  int transform;  // 0 none, 1 Kronecker, 2 Hadamard
};

PackedLinear make_linear(const Case& c, Rng& r) {
  const int in = c.n1 * c.n2;
  PackedParts p;
  for (int k = 0; k < c.planes; ++k) {
    auto w = uniform(r, (size_t)c.out * in, -1.0f, 1.0f);
    auto a = uniform(r, (size_t)c.out, 0.1f, 1.0f);
    auto mu = uniform(r, (size_t)c.out, -0.2f, 0.2f);
    p.planes.push_back(pack_binary(w.data(), c.out, in, a.data(), mu.data()));
  }
  // Signed permutations keep the rotated input exact on both paths, so the
  // quantized activations are the same and any difference is the split's.
  if (c.transform == 1)
    p.transform = std::make_shared<KroneckerTransform>(signed_permutation(c.n1, r), c.n1,
                                                       signed_permutation(c.n2, r), c.n2);
  else if (c.transform == 2)
    p.transform = std::make_shared<HadamardTransform>(in, 11);
  p.abits = 6;
  p.act_clip = 0.9f;
  p.rank = c.rank;
  auto A = uniform(r, (size_t)c.out * c.rank, -0.5f, 0.5f);
  auto B = uniform(r, (size_t)c.rank * in, -0.5f, 0.5f);
  if (c.f16) {
    std::vector<uint16_t> a16, b16;
    for (float v : A) a16.push_back(f32_to_f16(v));
    for (float v : B) b16.push_back(f32_to_f16(v));
    p.set_lowrank(LowRankDtype::F16, a16, b16);
  } else {
    p.set_lowrank(LowRankDtype::F32, A, B);
  }
  if (c.bias) p.bias = uniform(r, (size_t)c.out, -1.0f, 1.0f);
  return PackedLinear(std::move(p));
}

struct ThreadCount {
  int saved = omp_get_max_threads();
  ~ThreadCount() { omp_set_num_threads(saved); }
};

}  // namespace

TEST(PackedLinearShared, OneTokenSplitOverThreadsEqualsSerialPath) {
  ThreadCount restore;
  Rng rng(2026);
  const Case cases[] = {
      {8, 10, 83, 1, 0, false, false, 1},  {8, 10, 83, 2, 5, true, true, 1},
      {6, 10, 20, 1, 3, false, true, 1},   {4, 16, 130, 2, 16, false, false, 2},
      {1, 48, 47, 1, 2, true, false, 0},   {32, 64, 96, 1, 16, true, false, 1},
  };
  for (const Case& c : cases) {
    const PackedLinear lin = make_linear(c, rng);
    const int in = c.n1 * c.n2;
    auto x = uniform(rng, (size_t)in, -2.0f, 2.0f);
    x[3] = 9.0f;  // an outlier, as activations have
    omp_set_num_threads(1);
    std::vector<float> want(c.out, NAN);
    lin.forward(x.data(), 1, want.data());
    double scale = 0;
    for (float v : want) scale = std::max(scale, (double)std::fabs(v));
    for (int threads : {2, 3, 5}) {
      omp_set_num_threads(threads);
      std::vector<float> y(c.out, NAN);
      lin.forward(x.data(), 1, y.data());
      for (int i = 0; i < c.out; ++i)
        ASSERT_NEAR(y[i], want[i], 1e-5 * scale)
            << lin.describe() << " threads " << threads << " row " << i;
    }
  }
}

// Two tokens take the batched path; its first row must match the one-token
// shared path as well (the prefill/decode agreement the model tests rely on).
TEST(PackedLinearShared, OneTokenEqualsRowOfBatchedForward) {
  ThreadCount restore;
  Rng rng(7);
  const Case c{8, 10, 83, 2, 5, true, true, 1};
  const PackedLinear lin = make_linear(c, rng);
  const int in = c.n1 * c.n2;
  auto x = uniform(rng, (size_t)2 * in, -2.0f, 2.0f);
  omp_set_num_threads(2);
  std::vector<float> batched((size_t)2 * c.out), one(c.out);
  lin.forward(x.data(), 2, batched.data());
  lin.forward(x.data(), 1, one.data());
  double scale = 0;
  for (float v : one) scale = std::max(scale, (double)std::fabs(v));
  for (int i = 0; i < c.out; ++i) ASSERT_NEAR(one[i], batched[i], 1e-5 * scale) << "row " << i;
}

// q/k/v-style groups (same input, different transforms, widths, ranks and
// plane counts) in one region equal each linear run alone on one thread.
TEST(PackedLinearShared, SameInputGroupEqualsEachLinearAlone) {
  ThreadCount restore;
  Rng rng(99);
  const Case cases[] = {{8, 10, 83, 1, 0, false, false, 1},
                        {8, 10, 20, 2, 5, true, true, 2},
                        {8, 10, 130, 1, 3, false, false, 0},
                        {8, 10, 47, 2, 16, true, true, 1}};
  std::vector<PackedLinear> lins;
  for (const Case& c : cases) lins.push_back(make_linear(c, rng));
  const int in = 80;
  auto x = uniform(rng, (size_t)in, -2.0f, 2.0f);
  x[7] = -8.0f;
  for (int count : {1, 2, 3, 4}) {
    std::vector<std::vector<float>> want(count);
    omp_set_num_threads(1);
    for (int j = 0; j < count; ++j) {
      want[j].assign(lins[j].out_features(), NAN);
      lins[j].forward(x.data(), 1, want[j].data());
    }
    for (int threads : {2, 3, 7}) {
      omp_set_num_threads(threads);
      std::vector<std::vector<float>> got(count);
      const Linear* lp[4];
      float* ys[4];
      for (int j = 0; j < count; ++j) {
        got[j].assign(lins[j].out_features(), NAN);
        lp[j] = &lins[j];
        ys[j] = got[j].data();
      }
      forward_same_input(lp, ys, count, x.data(), 1);
      for (int j = 0; j < count; ++j) {
        double scale = 0;
        for (float v : want[j]) scale = std::max(scale, (double)std::fabs(v));
        for (size_t i = 0; i < want[j].size(); ++i)
          ASSERT_NEAR(got[j][i], want[j][i], 1e-5 * scale)
              << "group of " << count << ", linear " << j << " (" << lins[j].describe()
              << "), threads " << threads << ", row " << i;
      }
    }
  }
}

// Several tokens through the group (a batch of decode steps): each token's
// outputs are bit-identical to that token run alone through the group, at any
// thread count, and agree with the plain n-token forward on one thread.
TEST(PackedLinearShared, TokenGroupOfSeveralTokensEqualsEachTokenAlone) {
  ThreadCount restore;
  Rng rng(7);
  const Case cases[] = {{8, 10, 83, 1, 0, false, false, 1},
                        {8, 10, 20, 2, 5, true, true, 2},
                        {8, 10, 47, 2, 16, true, true, 1}};
  std::vector<PackedLinear> lins;
  for (const Case& c : cases) lins.push_back(make_linear(c, rng));
  const int in = 80, count = 3;
  for (int n : {2, 3, PackedLinear::kMaxTokens}) {
    auto x = uniform(rng, (size_t)n * in, -2.0f, 2.0f);
    x[(size_t)(n - 1) * in + 5] = 9.0f;  // a different activation range per token
    for (int threads : {2, 3}) {
      omp_set_num_threads(threads);
      std::vector<std::vector<float>> got(count), alone(count), plain(count);
      const Linear* lp[count];
      float* ys[count];
      for (int j = 0; j < count; ++j) {
        got[j].assign((size_t)n * lins[j].out_features(), NAN);
        alone[j].assign(got[j].size(), NAN);
        lp[j] = &lins[j];
        ys[j] = got[j].data();
      }
      forward_same_input(lp, ys, count, x.data(), n);
      for (int t = 0; t < n; ++t) {
        float* yt[count];
        for (int j = 0; j < count; ++j) yt[j] = alone[j].data() + (size_t)t * lins[j].out_features();
        forward_same_input(lp, yt, count, x.data() + (size_t)t * in, 1);
      }
      omp_set_num_threads(1);
      for (int j = 0; j < count; ++j) {
        plain[j].assign(got[j].size(), NAN);
        lins[j].forward(x.data(), n, plain[j].data());
      }
      for (int j = 0; j < count; ++j) {
        double scale = 0;
        for (float v : plain[j]) scale = std::max(scale, (double)std::fabs(v));
        for (size_t i = 0; i < got[j].size(); ++i) {
          ASSERT_EQ(got[j][i], alone[j][i]) << n << " tokens, linear " << j << " ("
                                            << lins[j].describe() << "), threads " << threads
                                            << ", element " << i;
          ASSERT_NEAR(got[j][i], plain[j][i], 1e-5 * scale) << n << " tokens, linear " << j;
        }
      }
    }
  }
}
