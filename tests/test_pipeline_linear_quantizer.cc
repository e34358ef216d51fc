// quantize_linear's PSP warm-up: early iterations binarize with the sign·α
// surrogate, the last ones (and the returned pair) with the configured binarizer.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "pipeline/linear_quantizer.h"
#include "quant/xtx.h"

using namespace bwla;

namespace {

struct Fixture {
  MatrixRM w;
  LinearStats st;
  Fixture(int out, int in, long tokens) {
    Rng rng(3);
    w.resize(out, in);
    for (long i = 0; i < w.size(); ++i) w.data()[i] = (float)rng.normal();
    MatrixRM x(tokens, in);
    for (long i = 0; i < x.size(); ++i) x.data()[i] = (float)rng.normal() * (i % in == 5 ? 8.f : 1.f);
    XtxAccumulator acc(in);
    acc.add(x.data(), tokens);
    st.xtx = acc.xtx();
    st.n_tokens = tokens;
    st.sample = x.topRows(256);
  }
};

QuantizeOptions bwla_no_okt(int full_iters, bool groups = true) {
  QuantizeOptions o;
  o.method = "bwla";
  o.transform = "none";  // keeps S unrotated so the test can redo the last step
  o.psp = true;
  o.psp_opt.iters = 4;
  o.psp_full_iters = full_iters;
  o.wq.groups = groups;
  o.abits = 16;
  o.finalize();
  return o;
}

}  // namespace

TEST(LinearQuantizer, PspWarmIterationsEndWithARealBinarization) {
  Fixture f(96, 128, 1024);
  QuantizeOptions o = bwla_no_okt(1);
  LinearQuantReport rep;
  auto lin = quantize_linear(f.w, {}, f.st, o, 1, rep);
  const FakeQuantParts& p = lin->parts();
  ASSERT_EQ(p.lr_a.rows(), 96);
  ASSERT_GE(p.lr_a.cols(), 1);
  EXPECT_EQ(rep.extra["psp"]["warm_iters"], 3);
  EXPECT_EQ(rep.extra["psp"]["best_iter"], 3);  // the only full iteration
  // The stored binarized part is the configured binarizer (arb-x) applied to
  // W − A·B with the returned branch, not the sign·α surrogate.
  MatrixRM resid = f.w - p.lr_a * p.lr_b;
  WeightQuantResult want = quantize_weight(resid, &f.st.xtx, f.st.n_tokens, o.wq);
  EXPECT_LT((want.w_hat - p.w_hat).cwiseAbs().maxCoeff(), 1e-5);
}

TEST(LinearQuantizer, PspFullItersDefaultsFollowTheColumnGroups) {
  Fixture f(48, 64, 512);
  LinearQuantReport a, b, c;
  auto la = quantize_linear(f.w, {}, f.st, bwla_no_okt(0, true), 1, a);
  auto lb = quantize_linear(f.w, {}, f.st, bwla_no_okt(0, false), 1, b);
  auto lc = quantize_linear(f.w, {}, f.st, bwla_no_okt(-1, true), 1, c);
  EXPECT_EQ(a.extra["psp"]["warm_iters"], 3);  // 4 iterations, the last one full
  EXPECT_EQ(b.extra["psp"]["warm_iters"], 0);
  EXPECT_EQ(c.extra["psp"]["warm_iters"], 0);
  // Warm-up changes the branch the loop ends with.
  EXPECT_GT((la->parts().lr_a * la->parts().lr_b - lc->parts().lr_a * lc->parts().lr_b).norm(), 1e-4);
  EXPECT_EQ(QuantizeOptions().psp_full_iters, 0);
}

TEST(LinearQuantizer, BadPspFullItersIsRejected) {
  QuantizeOptions o;
  o.psp_full_iters = -2;
  try {
    o.finalize();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--psp-full-iters"), std::string::npos) << e.what();
  }
}
