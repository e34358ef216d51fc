// panel_gemv (PrepackedGemm's single-token kernel): every ISA version against a
// double-precision reference, including odd panel depths and partial panels.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/panel_gemv.h"
#include "kernels_test_util.h"

using namespace bwla;
using namespace bwla::test;

TEST(PanelGemv, EveryIsaMatchesReference) {
  IsaGuard guard;
  Rng rng(13);
  for (int kp : {2, 16, 33, 48, 1024}) {
    auto P = random_floats(rng, (size_t)kp * 64, -1.0f, 1.0f);
    auto x = random_floats(rng, kp, -1.0f, 1.0f);
    std::vector<double> ref(64, 0.0), mag(64, 0.0);
    for (int k = 0; k < kp; ++k)
      for (int i = 0; i < 64; ++i) {
        ref[i] += (double)x[k] * P[(size_t)k * 64 + i];
        mag[i] += std::fabs((double)x[k] * P[(size_t)k * 64 + i]);
      }
    for (Isa isa : available_isas()) {
      set_active_isa(isa);
      for (int n_out : {1, 17, 64}) {
        std::vector<float> y(65, -9.0f);
        detail::panel_gemv(P.data(), x.data(), kp, n_out, y.data());
        for (int i = 0; i < n_out; ++i)
          ASSERT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-6) << isa_name(isa) << " kp=" << kp << " i=" << i;
        for (int i = n_out; i < 65; ++i) ASSERT_EQ(y[i], -9.0f) << "wrote past n_out " << n_out;
      }
    }
  }
}
