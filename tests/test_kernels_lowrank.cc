#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/half.h"
#include "kernels/lowrank.h"
#include "kernels_test_util.h"

using namespace bwla;
using bwla::test::available_isas;
using bwla::test::IsaGuard;
using bwla::test::random_floats;

TEST(LowRank, MatchesDoubleReferenceEveryIsa) {
  IsaGuard guard;
  Rng rng(21);
  struct S { int tokens, in, rank, out; };
  for (S s : {S{1, 1, 1, 1}, S{3, 17, 4, 9}, S{1, 2048, 16, 2048}, S{5, 513, 33, 65},
              S{8, 100, 7, 31}, S{2, 64, 64, 64}, S{37, 130, 10, 77}}) {
    for (int off : {0, 1}) {
      auto xb = random_floats(rng, (size_t)s.tokens * s.in + off, -1.0f, 1.0f);
      auto B = random_floats(rng, (size_t)s.rank * s.in, -0.5f, 0.5f);
      auto A = random_floats(rng, (size_t)s.out * s.rank, -0.5f, 0.5f);
      auto y0 = random_floats(rng, (size_t)s.tokens * s.out + off, -1.0f, 1.0f);
      const float* x = xb.data() + off;
      std::vector<double> ref((size_t)s.tokens * s.out);
      std::vector<double> mag(ref.size());
      for (int t = 0; t < s.tokens; ++t) {
        std::vector<double> u(s.rank), um(s.rank);
        for (int k = 0; k < s.rank; ++k)
          for (int j = 0; j < s.in; ++j) {
            u[k] += (double)B[(size_t)k * s.in + j] * x[(size_t)t * s.in + j];
            um[k] += std::fabs((double)B[(size_t)k * s.in + j] * x[(size_t)t * s.in + j]);
          }
        for (int i = 0; i < s.out; ++i) {
          double acc = y0[off + (size_t)t * s.out + i], m = std::fabs(acc);
          for (int k = 0; k < s.rank; ++k) {
            acc += (double)A[(size_t)i * s.rank + k] * u[k];
            m += std::fabs((double)A[(size_t)i * s.rank + k]) * um[k];
          }
          ref[(size_t)t * s.out + i] = acc;
          mag[(size_t)t * s.out + i] = m;
        }
      }
      for (Isa isa : available_isas()) {
        set_active_isa(isa);
        std::vector<float> yb = y0;
        float* y = yb.data() + off;
        std::vector<float> At((size_t)s.rank * s.out);
        for (int i = 0; i < s.out; ++i)
          for (int k = 0; k < s.rank; ++k) At[(size_t)k * s.out + i] = A[(size_t)i * s.rank + k];
        lowrank_add(x, s.tokens, s.in, B.data(), At.data(), s.rank, s.out, y);
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-6)
              << isa_name(isa) << " in=" << s.in << " rank=" << s.rank << " i=" << i;
      }
    }
  }
}

TEST(LowRank, ZeroRankIsNoOp) {
  std::vector<float> x(10, 1.0f), y(4, 3.0f);
  lowrank_add(x.data(), 1, 10, nullptr, nullptr, 0, 4, y.data());
  for (float v : y) EXPECT_EQ(v, 3.0f);
}

TEST(LowRank, Fp16FactorsMatchDoubleReferenceEveryIsa) {
  IsaGuard guard;
  Rng rng(33);
  struct S { int tokens, in, rank, out; };
  for (S s : {S{1, 1, 1, 1}, S{3, 17, 4, 9}, S{1, 2048, 10, 2048}, S{5, 513, 33, 65},
              S{6, 100, 7, 31}, S{2, 40, 1, 23}}) {
    auto xb = random_floats(rng, (size_t)s.tokens * s.in + 1, -1.0f, 1.0f);
    const float* x = xb.data() + 1;  // misaligned
    std::vector<uint16_t> B((size_t)s.rank * s.in + 1), At((size_t)s.rank * s.out + 1);
    for (auto& v : B) v = f32_to_f16(rng.uniformf(-0.5f, 0.5f));
    for (auto& v : At) v = f32_to_f16(rng.uniformf(-0.5f, 0.5f));
    const uint16_t* b = B.data() + 1;  // odd offsets
    const uint16_t* at = At.data() + 1;
    auto y0 = random_floats(rng, (size_t)s.tokens * s.out, -1.0f, 1.0f);
    std::vector<double> ref(y0.size()), mag(y0.size());
    for (int t = 0; t < s.tokens; ++t) {
      std::vector<double> u(s.rank), um(s.rank);
      for (int k = 0; k < s.rank; ++k)
        for (int j = 0; j < s.in; ++j) {
          const double p = (double)f16_to_f32(b[(size_t)k * s.in + j]) * x[(size_t)t * s.in + j];
          u[k] += p;
          um[k] += std::fabs(p);
        }
      for (int i = 0; i < s.out; ++i) {
        double acc = y0[(size_t)t * s.out + i], m = std::fabs(acc);
        for (int k = 0; k < s.rank; ++k) {
          const double a = f16_to_f32(at[(size_t)k * s.out + i]);
          acc += a * u[k];
          m += std::fabs(a) * um[k];
        }
        ref[(size_t)t * s.out + i] = acc;
        mag[(size_t)t * s.out + i] = m;
      }
    }
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      std::vector<float> y = y0;
      lowrank_add_f16(x, s.tokens, s.in, b, at, s.rank, s.out, y.data());
      for (size_t i = 0; i < ref.size(); ++i)
        ASSERT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-6)
            << isa_name(isa) << " in=" << s.in << " rank=" << s.rank << " out=" << s.out << " i=" << i;
    }
  }
}

// int8 factors with per-component scales: every ISA against the double
// reference, and the project / expand pieces over a split equal the whole add.
TEST(LowRank, Int8FactorsMatchDoubleReferenceEveryIsa) {
  IsaGuard guard;
  Rng rng(34);
  struct S { int tokens, in, rank, out; };
  for (S s : {S{1, 1, 1, 1}, S{3, 17, 4, 9}, S{1, 2048, 10, 5632}, S{5, 513, 33, 65},
              S{6, 100, 7, 31}, S{2, 40, 1, 23}}) {
    auto xb = random_floats(rng, (size_t)s.tokens * s.in + 1, -1.0f, 1.0f);
    const float* x = xb.data() + 1;  // misaligned
    std::vector<int8_t> B((size_t)s.rank * s.in + 1), At((size_t)s.rank * s.out + 1);
    for (auto& v : B) v = (int8_t)(int)rng.uniformf(-127.99f, 127.99f);
    for (auto& v : At) v = (int8_t)(int)rng.uniformf(-127.99f, 127.99f);
    const int8_t* b = B.data() + 1;  // odd offsets
    const int8_t* at = At.data() + 1;
    const auto sc = random_floats(rng, s.rank, 1e-5f, 1e-3f);
    auto y0 = random_floats(rng, (size_t)s.tokens * s.out, -1.0f, 1.0f);
    std::vector<double> ref(y0.size()), mag(y0.size());
    for (int t = 0; t < s.tokens; ++t) {
      std::vector<double> u(s.rank), um(s.rank);
      for (int k = 0; k < s.rank; ++k) {
        for (int j = 0; j < s.in; ++j) {
          const double p = (double)b[(size_t)k * s.in + j] * x[(size_t)t * s.in + j];
          u[k] += p;
          um[k] += std::fabs(p);
        }
        u[k] *= sc[k];
        um[k] *= sc[k];
      }
      for (int i = 0; i < s.out; ++i) {
        double acc = y0[(size_t)t * s.out + i], m = std::fabs(acc);
        for (int k = 0; k < s.rank; ++k) {
          acc += at[(size_t)k * s.out + i] * u[k];
          m += std::fabs((double)at[(size_t)k * s.out + i]) * um[k];
        }
        ref[(size_t)t * s.out + i] = acc;
        mag[(size_t)t * s.out + i] = m;
      }
    }
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      std::vector<float> y = y0;
      lowrank_add_i8(x, s.tokens, s.in, b, at, sc.data(), s.rank, s.out, y.data());
      for (size_t i = 0; i < ref.size(); ++i)
        ASSERT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-6)
            << isa_name(isa) << " in=" << s.in << " rank=" << s.rank << " out=" << s.out << " i=" << i;
      // One token in pieces: rank split in two, rows in three.
      std::vector<float> u(s.rank), z(y0.begin(), y0.begin() + s.out);
      const int kh = s.rank / 2;
      lowrank_project_i8(x, s.in, b, sc.data(), 0, kh, u.data());
      lowrank_project_i8(x, s.in, b, sc.data(), kh, s.rank, u.data());
      const int r1 = s.out / 3, r2 = 2 * s.out / 3;
      lowrank_expand_i8(u.data(), s.rank, at, s.out, 0, r1, z.data());
      lowrank_expand_i8(u.data(), s.rank, at, s.out, r1, r2, z.data());
      lowrank_expand_i8(u.data(), s.rank, at, s.out, r2, s.out, z.data());
      std::vector<float> w(y0.begin(), y0.begin() + s.out);
      lowrank_add_i8(x, 1, s.in, b, at, sc.data(), s.rank, s.out, w.data());
      // Equal up to rounding: a row can fall in the vector body in one split and
      // in the scalar tail (no FMA) in another.
      for (int i = 0; i < s.out; ++i)
        ASSERT_NEAR(z[i], w[i], 1e-6 * mag[i] + 1e-7) << isa_name(isa) << " i=" << i;
    }
  }
}

// lowrank_project/lowrank_expand over any split of rank and rows equal
// lowrank_add of one token (fp32 and fp16 factors, every ISA).
TEST(LowRank, ProjectExpandPiecesEqualOneTokenAdd) {
  IsaGuard guard;
  Rng rng(5);
  struct S { int in, rank, out; };
  for (S s : {S{1, 1, 1}, S{17, 4, 9}, S{2048, 16, 5632}, S{130, 7, 77}}) {
    auto x = random_floats(rng, (size_t)s.in, -1.0f, 1.0f);
    auto B = random_floats(rng, (size_t)s.rank * s.in, -0.5f, 0.5f);
    auto At = random_floats(rng, (size_t)s.rank * s.out, -0.5f, 0.5f);
    auto y0 = random_floats(rng, (size_t)s.out, -1.0f, 1.0f);
    std::vector<uint16_t> B16(B.size()), At16(At.size());
    for (size_t i = 0; i < B.size(); ++i) B16[i] = f32_to_f16(B[i]);
    for (size_t i = 0; i < At.size(); ++i) At16[i] = f32_to_f16(At[i]);
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      for (bool f16 : {false, true}) {
        std::vector<float> want = y0;
        if (f16) lowrank_add_f16(x.data(), 1, s.in, B16.data(), At16.data(), s.rank, s.out, want.data());
        else lowrank_add(x.data(), 1, s.in, B.data(), At.data(), s.rank, s.out, want.data());
        for (int parts : {1, 2, 3}) {
          std::vector<float> u(s.rank, NAN), y = y0;
          for (int p = 0; p < parts; ++p) {
            const int k0 = s.rank * p / parts, k1 = s.rank * (p + 1) / parts;
            if (f16) lowrank_project_f16(x.data(), s.in, B16.data(), k0, k1, u.data());
            else lowrank_project(x.data(), s.in, B.data(), k0, k1, u.data());
          }
          for (int p = 0; p < parts; ++p) {
            const int r0 = s.out * p / parts, r1 = s.out * (p + 1) / parts;
            if (f16) lowrank_expand_f16(u.data(), s.rank, At16.data(), s.out, r0, r1, y.data());
            else lowrank_expand(u.data(), s.rank, At.data(), s.out, r0, r1, y.data());
          }
          for (int i = 0; i < s.out; ++i)
            ASSERT_NEAR(y[i], want[i], 1e-5f * (1.0f + std::fabs(want[i])))
                << isa_name(isa) << " f16 " << f16 << " in " << s.in << " parts " << parts << " i " << i;
        }
      }
    }
  }
}

// The traits table calls the typed kernel of its storage type: the same bits
// as the direct calls, for each dtype, in both the whole-call and the split
// (project / expand) forms.
TEST(LowRank, TraitsTableCallsTheTypedKernels) {
  bwla::Rng rng(17);
  const int n = 3, in = 37, out = 29, r = 5;
  std::vector<float> x((size_t)n * in), s(r);
  for (auto& v : x) v = rng.uniformf(-1, 1);
  for (auto& v : s) v = rng.uniformf(0.01f, 0.02f);
  std::vector<float> Bf((size_t)r * in), Af((size_t)r * out);
  std::vector<uint16_t> Bh(Bf.size()), Ah(Af.size());
  std::vector<int8_t> Bi(Bf.size()), Ai(Af.size());
  for (size_t i = 0; i < Bf.size(); ++i) {
    Bf[i] = rng.uniformf(-0.5f, 0.5f), Bh[i] = f32_to_f16(Bf[i]), Bi[i] = (int8_t)(Bf[i] * 250);
  }
  for (size_t i = 0; i < Af.size(); ++i) {
    Af[i] = rng.uniformf(-0.5f, 0.5f), Ah[i] = f32_to_f16(Af[i]), Ai[i] = (int8_t)(Af[i] * 250);
  }
  struct Case {
    LowRankDtype t;
    const void *B, *At;
    size_t bytes;
    const char* name;
  };
  for (const Case& c : {Case{LowRankDtype::F32, Bf.data(), Af.data(), 4, "f32"},
                        Case{LowRankDtype::F16, Bh.data(), Ah.data(), 2, "f16"},
                        Case{LowRankDtype::I8, Bi.data(), Ai.data(), 1, "i8"}}) {
    const LowRankTraits& tr = lowrank_traits(c.t);
    EXPECT_STREQ(tr.name, c.name);
    EXPECT_EQ(tr.elem_bytes, c.bytes);
    std::vector<float> want((size_t)n * out, 0.25f), got = want;
    if (c.t == LowRankDtype::F32) lowrank_add(x.data(), n, in, Bf.data(), Af.data(), r, out, want.data());
    if (c.t == LowRankDtype::F16) lowrank_add_f16(x.data(), n, in, Bh.data(), Ah.data(), r, out, want.data());
    if (c.t == LowRankDtype::I8)
      lowrank_add_i8(x.data(), n, in, Bi.data(), Ai.data(), s.data(), r, out, want.data());
    tr.add(x.data(), n, in, c.B, c.At, s.data(), r, out, got.data());
    EXPECT_EQ(got, want) << c.name;
    // One token through project + expand equals the add of that token.
    std::vector<float> u(r), y1(out, 0.25f);
    tr.project(x.data(), in, c.B, s.data(), 0, r, u.data());
    tr.expand(u.data(), r, c.At, out, 0, out, y1.data());
    std::vector<float> y0(out, 0.25f);
    tr.add(x.data(), 1, in, c.B, c.At, s.data(), r, out, y0.data());
    for (int o = 0; o < out; ++o) EXPECT_NEAR(y1[o], y0[o], 1e-5f) << c.name << " " << o;
  }
}
