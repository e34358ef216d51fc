// attn_head (decode attention of one query head): every ISA version against a
// double-precision softmax-attention reference, on head widths with and without
// vector tails, strided keys/values (GQA rows inside a wider KV row) and
// misaligned pointers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attn_head.h"
#include "kernels_test_util.h"

using namespace bwla;
using namespace bwla::test;

TEST(AttnHead, EveryIsaMatchesReference) {
  IsaGuard guard;
  Rng rng(41);
  for (int hd : {1, 7, 16, 60, 64, 80, 128}) {
    for (int T : {1, 2, 7, 33, 130}) {
      const size_t ld = (size_t)hd + 5;
      auto q = random_floats(rng, hd + 1, -1.0f, 1.0f);
      auto k = random_floats(rng, 1 + T * ld, -2.0f, 2.0f);
      auto v = random_floats(rng, 1 + T * ld, -1.0f, 1.0f);
      const float* qp = q.data() + 1;
      const float* kp = k.data() + 1;
      const float* vp = v.data() + 1;
      const float scale = 1.0f / std::sqrt((float)hd);
      std::vector<double> s(T), ref(hd, 0.0);
      double mx = -1e300, sum = 0.0;
      for (int j = 0; j < T; ++j) {
        double d = 0.0;
        for (int i = 0; i < hd; ++i) d += (double)qp[i] * kp[j * ld + i];
        s[j] = d * scale;
        mx = std::max(mx, s[j]);
      }
      for (int j = 0; j < T; ++j) sum += (s[j] = std::exp(s[j] - mx));
      for (int j = 0; j < T; ++j) s[j] /= sum;
      for (int j = 0; j < T; ++j)
        for (int i = 0; i < hd; ++i) ref[i] += s[j] * vp[j * ld + i];
      for (Isa isa : available_isas()) {
        set_active_isa(isa);
        std::vector<float> scratch(T), out(hd + 1, -9.0f);
        attn_head(qp, kp, ld, vp, ld, T, hd, scale, scratch.data(), out.data());
        for (int j = 0; j < T; ++j)
          ASSERT_NEAR(scratch[j], s[j], 1e-5) << isa_name(isa) << " hd=" << hd << " T=" << T << " j=" << j;
        for (int i = 0; i < hd; ++i)
          ASSERT_NEAR(out[i], ref[i], 1e-5) << isa_name(isa) << " hd=" << hd << " T=" << T << " i=" << i;
        ASSERT_EQ(out[hd], -9.0f) << isa_name(isa) << " wrote past hd=" << hd;
      }
    }
  }
}
