// The quantization pipeline end to end on stories260K (real weights, tiny).
#include <gtest/gtest.h>

#include <filesystem>
#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "eval/perplexity.h"
#include "format/fake_quant_linear.h"
#include "format/model_loader.h"
#include "io/mmap.h"
#include "model/forward.h"
#include "model/ops.h"
#include "model/random_checkpoint.h"
#include "pipeline/linear_quantizer.h"
#include "pipeline/quantize.h"
#include "quant/xtx.h"
#include "shared_data.h"
#include "tmpdir.h"
#include "tokenizer/tokenizer.h"

using namespace bwla;
namespace fs = std::filesystem;

namespace {

const char* kModel = "models/stories260K-hf/model.safetensors";

QuantizeOptions small_opts(const std::string& method) {
  QuantizeOptions o;
  o.method = method;
  o.calib.shared_dir = test::shared_dir();
  o.calib.n_segments = 4;
  o.calib.seq_len = 64;
  o.act_sample_rows = 128;
  o.okt.iters = 4;
  o.psp_opt.iters = 2;
  o.psp_opt.rank = 2;
  o.rank_ratio = 0;
  return o;
}

double ppl_of(const std::string& dir) {
  auto m = load_model(dir);
  auto tok = Tokenizer::load_dir(dir);
  auto text = read_text_file(test::shared_path("data/wikitext-2-raw/wiki.valid.raw")).substr(0, 40000);
  PplOptions po;
  po.ctx = 128;
  po.max_windows = 8;
  po.progress = false;
  return perplexity(*m, tok->encode(text, true), po).ppl;
}

std::string model_dir() { return test::shared_path("models/stories260K-hf"); }

TEST(Pipeline, SignBinarizedModelReloadsWithBinaryRows) {
  BWLA_REQUIRE_SHARED(kModel);
  test::TempDir td;
  const std::string out = td.file("q");
  QuantizeResult r = quantize_model(model_dir(), small_opts("rtn-sign"), out);
  ASSERT_TRUE(r.complete);
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  EXPECT_TRUE(fs::exists(out + "/quantize_report.json"));
  EXPECT_FALSE(fs::exists(out + ".partial"));
  auto m = load_model(out);
  for (auto& L : m->layers)
    for (auto& lin : L.lin) {
      auto* fq = dynamic_cast<const FakeQuantLinear*>(lin.get());
      ASSERT_NE(fq, nullptr);
      const MatrixRM& w = fq->parts().w_hat;
      for (int i = 0; i < w.rows(); i += 7) {
        std::set<float> vals(w.row(i).data(), w.row(i).data() + w.cols());
        EXPECT_LE(vals.size(), 2u) << "row " << i;  // α·s+μ takes two values
      }
    }
  // 1 sign bit + α, μ at 16 bits per row (+ the 32-bit clip ratio) on 64..172-wide rows.
  EXPECT_GT(r.bits_per_weight, 1.1);
  EXPECT_LT(r.bits_per_weight, 1.6);
  const double fp = ppl_of(model_dir()), q = ppl_of(out);
  EXPECT_GT(q, fp * 1.5);  // 1-bit hurts a 260K-parameter model a lot
}

TEST(Pipeline, EightBitGptqMatchesFp32) {
  BWLA_REQUIRE_SHARED(kModel);
  test::TempDir td;
  auto o = small_opts("gptq");
  o.wbits = 8;
  o.transform = "hadamard";  // rotation must not change the function
  quantize_model(model_dir(), o, td.file("q"));
  const double fp = ppl_of(model_dir()), q = ppl_of(td.file("q"));
  EXPECT_NEAR(q / fp, 1.0, 0.01) << fp << " vs " << q;
}

void check_resumes_to_the_same_model(QuantizeOptions o) {
  test::TempDir td;
  quantize_model(model_dir(), o, td.file("full"));
  auto staged = o;
  staged.stop_after = 2;
  QuantizeResult a = quantize_model(model_dir(), staged, td.file("staged"));
  EXPECT_FALSE(a.complete);
  EXPECT_TRUE(fs::exists(td.file("staged.partial/layer_0001/model.safetensors")));
  EXPECT_FALSE(fs::exists(td.file("staged")));  // nothing half-written at the output path
  QuantizeResult b = quantize_model(model_dir(), o, td.file("staged"));
  EXPECT_TRUE(b.complete);
  EXPECT_TRUE(b.report["layers"][0].value("resumed", false));
  EXPECT_FALSE(b.report["layers"][2].value("resumed", false));
  SafeTensorsFile f1(td.file("full/model.safetensors")), f2(td.file("staged/model.safetensors"));
  ASSERT_EQ(f1.names(), f2.names());
  for (auto& n : f1.names()) {
    const auto &x = f1.get(n), &y = f2.get(n);
    ASSERT_EQ(x.nbytes, y.nbytes) << n;
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << n;
  }
}

TEST(Pipeline, InterruptedRunResumesToTheSameModel) {
  BWLA_REQUIRE_SHARED(kModel);
  auto o = small_opts("bwla");
  o.psp = true;
  o.abits = 6;
  check_resumes_to_the_same_model(o);
  // A column-group layout: its factors (P.rc_*) come back from the checkpoint too.
  auto g = small_opts("arb-rc");
  g.abits = 6;
  check_resumes_to_the_same_model(g);
}

TEST(Pipeline, BadOptionsFailBeforeWritingAnything) {
  BWLA_REQUIRE_SHARED(kModel);
  test::TempDir td;
  auto bad = small_opts("nope");
  EXPECT_THROW(quantize_model(model_dir(), bad, td.file("q")), Error);
  auto bits = small_opts("billm");
  bits.wbits = 3;
  EXPECT_THROW(quantize_model(model_dir(), bits, td.file("q")), Error);
  auto ab = small_opts("rtn-sign");
  ab.abits = 5;
  EXPECT_THROW(quantize_model(model_dir(), ab, td.file("q")), Error);
  auto cal = small_opts("rtn-sign");
  cal.calib.n_segments = 100000;  // more tokens than the source has
  EXPECT_THROW(quantize_model(model_dir(), cal, td.file("q")), Error);
  auto src = small_opts("rtn-sign");
  src.calib.source = td.file("missing.txt");
  EXPECT_THROW(quantize_model(model_dir(), src, td.file("q")), Error);
  EXPECT_FALSE(fs::exists(td.file("q")));
}

TEST(Pipeline, ActivationQuantizationIsApplied) {
  BWLA_REQUIRE_SHARED(kModel);
  test::TempDir td;
  auto a16 = small_opts("gptq");
  a16.wbits = 8;
  auto a4 = a16;
  a4.abits = 4;
  quantize_model(model_dir(), a16, td.file("a16"));
  quantize_model(model_dir(), a4, td.file("a4"));
  EXPECT_GT(ppl_of(td.file("a4")), ppl_of(td.file("a16")) * 1.02);
}

}  // namespace

TEST(Pipeline, SixteenBitCheckpointKeepsItsEmbeddingBytesAndMatchesFp32AtEightBits) {
  // bf16 checkpoint, untied lm_head: embeddings/norm/lm_head are copied as stored,
  // and 8-bit GPTQ gives (nearly) the fp32 model's logits.
  test::TempDir td;
  RandomCheckpointSpec spec;
  spec.preset = "tiny-llama";
  spec.dtype = DType::BF16;
  spec.seed = 5;
  write_random_checkpoint(spec, td.file("m"));
  QuantizeOptions o = small_opts("gptq");
  o.wbits = 8;
  o.calib.source = "random-tokens";
  quantize_model(td.file("m"), o, td.file("q"));
  SafeTensorsFile a(td.file("m") + "/model.safetensors"), b(td.file("q") + "/model.safetensors");
  for (const char* n : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}) {
    if (!a.has(n)) continue;
    const TensorView &ta = a.get(n), &tb = b.get(n);
    ASSERT_EQ(ta.dtype, tb.dtype) << n;
    ASSERT_EQ(ta.nbytes, tb.nbytes) << n;
    EXPECT_EQ(std::memcmp(ta.data, tb.data, ta.nbytes), 0) << n;
  }
  auto fp = load_model(td.file("m")), q = load_model(td.file("q"));
  std::vector<int> toks = {1, 7, 3, 9, 2, 11, 4, 5};
  KVCache c1(fp->cfg, 16), c2(q->cfg, 16);
  std::vector<float> l1((size_t)toks.size() * fp->cfg.vocab), l2(l1.size());
  forward_tokens(*fp, toks.data(), (int)toks.size(), c1, l1.data(), true);
  forward_tokens(*q, toks.data(), (int)toks.size(), c2, l2.data(), true);
  double num = 0, den = 0;
  for (size_t i = 0; i < l1.size(); ++i) num += (l1[i] - l2[i]) * (l1[i] - l2[i]), den += l1[i] * l1[i];
  EXPECT_LT(std::sqrt(num / den), 0.05);
}

// A layer's linears quantized side by side (one thread each) give the model
// that one-at-a-time quantization gives, byte for byte (no product or sum is
// cut by thread count), with every linear's report in place.
TEST(Pipeline, LinearsSideBySideMatchOneAtATime) {
  BWLA_REQUIRE_SHARED(kModel);
  test::TempDir td;
  auto o = small_opts("arb-x");
  o.abits = 6;
  o.linear_jobs = 1;
  QuantizeResult a = quantize_model(model_dir(), o, td.file("serial"));
  o.linear_jobs = 3;
  QuantizeResult b = quantize_model(model_dir(), o, td.file("side"));
  const auto& la = a.report["layers"];
  const auto& lb = b.report["layers"];
  ASSERT_EQ(la.size(), lb.size());
  for (size_t l = 0; l < la.size(); ++l) {
    ASSERT_EQ(la[l]["linears"].size(), (size_t)kNumLinears);
    for (int id = 0; id < kNumLinears; ++id) {
      const auto &x = la[l]["linears"][id], &y = lb[l]["linears"][id];
      EXPECT_EQ(y["name"], fmt::format("layers.{}.{}", l, linear_name(id)));
      EXPECT_EQ(x["name"], y["name"]);
      EXPECT_EQ(x["rel_out_error"].get<double>(), y["rel_out_error"].get<double>()) << y["name"];
      EXPECT_EQ(x["act_clip"], y["act_clip"]) << y["name"];
    }
  }
  EXPECT_DOUBLE_EQ(a.bits_per_weight, b.bits_per_weight);
  SafeTensorsFile fa(td.file("serial/model.safetensors")), fb(td.file("side/model.safetensors"));
  ASSERT_EQ(fa.names(), fb.names());
  for (auto& n : fa.names()) {
    const auto &x = fa.get(n), &y = fb.get(n);
    ASSERT_EQ(x.nbytes, y.nbytes) << n;
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << n;
  }
}

namespace {
// Quantizes one linear of the fp32 model on the XᵀX of `in` rows, as the
// pipeline does (GPTQ's result depends on the calibration only through XᵀX).
MatrixRM requantize(const Model& fp, int layer, int id, const std::vector<float>& in, int dim,
                    const QuantizeOptions& o) {
  XtxAccumulator acc(dim);
  acc.add(in.data(), (long)(in.size() / dim));
  LinearStats st;
  st.xtx = acc.xtx();
  st.n_tokens = acc.count();
  const auto* d = dynamic_cast<const DenseLinear*>(fp.layers[layer].lin[id].get());
  MatrixRM w = Eigen::Map<const MatrixRM>(d->weight(), d->out_features(), d->in_features());
  LinearQuantReport rep;
  rep.name = "test";
  return quantize_linear(w, d->bias(), st, o, 0, rep)->parts().w_hat;
}
}  // namespace

// True-sequential order: each linear's statistics come from the stream
// through the already-quantized linears before it (with their activation
// quantization), not from the fp32 layer. Recomputes three linears' GPTQ
// results from the quantized model's own stream, and checks that the fp32
// stream would have given different weights.
TEST(Pipeline, StatisticsComeFromTheQuantizedStream) {
  BWLA_REQUIRE_SHARED(kModel);
  test::TempDir td;
  auto o = small_opts("gptq");
  o.wbits = 3;
  o.abits = 6;
  o.linear_jobs = 1;
  quantize_model(model_dir(), o, td.file("q"));
  o.finalize();
  auto fp = load_model(model_dir());
  auto qm = load_model(td.file("q"));
  const ModelConfig& c = fp->cfg;
  const int S = o.calib.n_segments, L = o.calib.seq_len, n = S * L, H = c.hidden;
  ASSERT_LE(S, o.chunk_segments);  // one chunk: the pipeline's XᵀX sums the same rows in one call
  auto tok = Tokenizer::load_dir(model_dir());
  auto segs = sample_calibration(*tok, o.calib);
  std::vector<float> x((size_t)n * H);
  for (int s = 0; s < S; ++s) embed_tokens(*fp, segs[s].data(), L, x.data() + (size_t)s * L * H);
  auto w_hat = [&](int layer, int id) {
    return dynamic_cast<const FakeQuantLinear*>(qm->layers[layer].lin[id].get())->parts().w_hat;
  };
  auto check = [&](int layer, int id, const std::vector<float>& q_in, const std::vector<float>& fp_in,
                   int dim) {
    const MatrixRM got = w_hat(layer, id);
    const MatrixRM same = requantize(*fp, layer, id, q_in, dim, o);
    const MatrixRM other = requantize(*fp, layer, id, fp_in, dim, o);
    const double scale = got.cwiseAbs().maxCoeff();
    EXPECT_LE((got - same).cwiseAbs().maxCoeff(), 1e-5 * scale) << "layer " << layer << " " << linear_name(id);
    EXPECT_GT((got - other).cwiseAbs().maxCoeff(), 1e-2 * scale) << "layer " << layer << " " << linear_name(id);
  };
  // Layer 0, o_proj: attention over the quantized q/k/v vs the fp32 ones.
  std::vector<float> att_q((size_t)n * c.q_dim()), att_f(att_q.size());
  layer_attention(c, *qm->rope, qm->layers[0], 0, x.data(), S, L, att_q.data());
  layer_attention(c, *fp->rope, fp->layers[0], 0, x.data(), S, L, att_f.data());
  check(0, kO, att_q, att_f, c.q_dim());
  // Layer 0, down_proj: MLP activations behind the quantized o_proj and gate/up.
  std::vector<float> xq = x, xf = x;
  layer_attn_residual(c, qm->layers[0], 0, att_q.data(), n, xq.data());
  layer_attn_residual(c, fp->layers[0], 0, att_f.data(), n, xf.data());
  std::vector<float> act_q((size_t)n * c.intermediate), act_f(act_q.size());
  layer_mlp_act(c, qm->layers[0], 0, xq.data(), n, act_q.data());
  layer_mlp_act(c, fp->layers[0], 0, xf.data(), n, act_f.data());
  check(0, kDown, act_q, act_f, c.intermediate);
  // Layer 1, q_proj: the quantized layer 0's output vs the fp32 layer 0's.
  layer_mlp_residual(c, qm->layers[0], 0, act_q.data(), n, xq.data());
  layer_mlp_residual(c, fp->layers[0], 0, act_f.data(), n, xf.data());
  std::vector<float> h_q(xq.size()), h_f(xf.size());
  rmsnorm(xq.data(), qm->layers[1].attn_norm.data(), h_q.data(), n, H, c.rms_eps);
  rmsnorm(xf.data(), fp->layers[1].attn_norm.data(), h_f.data(), n, H, c.rms_eps);
  check(1, kQ, h_q, h_f, H);
}
