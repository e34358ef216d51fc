// quantize_linear's PSP modes: the xnor surrogate inside the alternation ends
// with one pass of the configured binarizer on W − A·B; full runs it every time.
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

QuantizeOptions bwla_no_okt(const std::string& inner) {
  QuantizeOptions o;
  o.method = "bwla";
  o.transform = "none";  // keeps S unrotated so the test can redo the last step
  o.psp = true;
  o.psp_opt.iters = 4;
  o.psp_inner = inner;
  o.abits = 16;
  o.finalize();
  return o;
}

}  // namespace

TEST(LinearQuantizer, PspXnorInnerEndsWithOneFullBinarizerPass) {
  Fixture f(96, 128, 1024);
  QuantizeOptions o = bwla_no_okt("xnor");
  LinearQuantReport rep;
  auto lin = quantize_linear(f.w, {}, f.st, o, 1, rep);
  const FakeQuantParts& p = lin->parts();
  ASSERT_EQ(p.lr_a.rows(), 96);
  ASSERT_GE(p.lr_a.cols(), 1);
  EXPECT_EQ(rep.extra["psp"]["inner"], "xnor");
  ASSERT_TRUE(rep.extra.contains("psp_final_error"));
  // The stored binarized part is the configured binarizer (arb-x) applied to W − A·B.
  WeightQuantOptions wq = o.wq;
  MatrixRM resid = f.w - p.lr_a * p.lr_b;
  WeightQuantResult want = quantize_weight(resid, &f.st.xtx, f.st.n_tokens, wq);
  EXPECT_LT((want.w_hat - p.w_hat).cwiseAbs().maxCoeff(), 1e-5);
  // The final arb-x pass fits the residual better than the sign·α surrogate did.
  const double final_err = rep.extra["psp_final_error"];
  const double xnor_err = rep.extra["psp"]["error"];
  EXPECT_LT(final_err, xnor_err);
}

TEST(LinearQuantizer, PspFullInnerRunsTheBinarizerInsideTheLoop) {
  Fixture f(48, 64, 512);
  LinearQuantReport a, b;
  auto la = quantize_linear(f.w, {}, f.st, bwla_no_okt("full"), 1, a);
  auto lb = quantize_linear(f.w, {}, f.st, bwla_no_okt("xnor"), 1, b);
  EXPECT_EQ(a.extra["psp"]["inner"], "full");
  EXPECT_FALSE(a.extra.contains("psp_final_error"));
  // Different low-rank branches: the loops chased different residuals.
  EXPECT_GT((la->parts().lr_a * la->parts().lr_b - lb->parts().lr_a * lb->parts().lr_b).norm(), 1e-4);
  EXPECT_EQ(QuantizeOptions().psp_inner, "xnor");
}

TEST(LinearQuantizer, UnknownPspInnerIsRejected) {
  QuantizeOptions o;
  o.psp_inner = "sometimes";
  try {
    o.finalize();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--psp-inner"), std::string::npos) << e.what();
  }
}
