// stories260K quantized in-test (small calibration), packed, and run through
// the packed kernels: logits and perplexity must match the fake-quant forward
// the pipeline measured.
//
// Tolerances (docs/FORMAT.md, "Agreement"):
//  * every packed linear against its fake-quant linear on the real inputs of
//    the fake-quant forward: max |Δy| ≤ 1e-5·max|y| with F32 scales (same
//    weights; only summation order differs), ≤ 2e-3 with F16 scales (α, μ and
//    the PSP factors rounded to fp16, relative 2^-11);
//  * whole model, 8 windows of 128 tokens: PPL within 1e-2 (F32) / 5e-2 (F16)
//    relative, and (F32) mean over tokens of max |Δlogit| ≤ 2e-2·max|logit|.
//    The model-level bound is loose on purpose: a 1-bit stories260K is
//    chaotic under per-token activation quantization — a 1e-7 change of a
//    linear's output moves some activation across a rounding boundary in a
//    later layer, and a flipped level changes that token's logits by up to a
//    few percent. The fake-quant path itself moves PPL by 2.4e-4 over 40
//    windows when OpenBLAS switches kernels (Haswell vs SkylakeX).
//  * the same packed model under forced scalar / AVX2 kernels: per linear
//    ≤ 1e-5 (integer sums are bit-exact; the fp32 low-rank dot products differ
//    in FMA use), model mean max |Δlogit| ≤ 2e-2·max|logit|.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "core/cpu.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "format/model_loader.h"
#include "runtime/packed_linear.h"
#include "format/packed_writer.h"
#include "io/json.h"
#include "io/mmap.h"
#include "model/forward.h"
#include "packed_testing.h"
#include "pipeline/quantize.h"
#include "shared_data.h"
#include "tmpdir.h"
#include "tokenizer/tokenizer.h"

using namespace bwla;

namespace {
using test::logits_of;
using test::max_abs;
using test::max_diff;

const char* kModel = "models/stories260K-hf/model.safetensors";
std::string model_dir() { return test::shared_path("models/stories260K-hf"); }

QuantizeOptions opts(const std::string& method, int abits) {
  QuantizeOptions o;
  o.method = method;
  o.abits = abits;
  o.calib.shared_dir = test::shared_dir();
  o.calib.n_segments = 8;
  o.calib.seq_len = 128;
  o.act_sample_rows = 256;
  o.okt.iters = 4;
  o.psp_opt.iters = 2;
  if (method == "bwla") {
    // The CLI's default for bwla: one sign plane, whole-row α, μ, sign refinement.
    o.wq.groups = false;
    o.wq.sign_refine = kBwlaOnePlaneSignRefine;
    o.wq.block_size = kBwlaOnePlaneBlock;
    o.psp = true;         // as the CLI sets for bwla (rank max(1, 0.005·64) = 1)
  }
  return o;
}

std::vector<int> text_ids(const std::string& dir, size_t chars) {
  auto tok = Tokenizer::load_dir(dir);
  auto text = read_text_file(test::shared_path("data/wikitext-2-raw/wiki.valid.raw")).substr(0, chars);
  return tok->encode(text, true);
}


// Per token: max_j |Δlogit|, relative to max |logit| of the reference.
struct Diff {
  double max_rel = 0, mean_rel = 0, frac_over = 0;  // frac of tokens over 1e-3
};
Diff diff(const std::vector<float>& ref, const std::vector<float>& got, int vocab) {
  Diff d;
  const double scale = max_abs(ref);
  const size_t T = ref.size() / vocab;
  for (size_t t = 0; t < T; ++t) {
    double m = 0;
    for (int j = 0; j < vocab; ++j)
      m = std::max(m, (double)std::fabs(ref[t * vocab + j] - got[t * vocab + j]));
    m /= scale;
    d.max_rel = std::max(d.max_rel, m);
    d.mean_rel += m / T;
    d.frac_over += (m > 1e-3) / (double)T;
  }
  return d;
}

struct Inputs : Capture {
  std::map<std::pair<int, int>, std::vector<float>> x;  // (layer, slot) -> [n, dim]
  void linear_input(int layer, int slot, const float* p, int n, int dim) override {
    x[{layer, slot}].assign(p, p + (size_t)n * dim);
  }
};

// Every packed linear against its fake-quant linear on the real inputs the
// fake-quant model sees: identical arithmetic up to summation order, no
// activation-level flips, so this is tight.
// b's linears run under `isa` (a's under the best ISA).
double worst_linear(const Model& fm, const Model& pm, const std::vector<int>& toks,
                    Isa isa = best_isa()) {
  Inputs cap;
  KVCache cache(fm.cfg, (int)toks.size());
  forward_tokens(fm, toks.data(), (int)toks.size(), cache, nullptr, false, &cap);
  double worst = 0;
  const int n = (int)toks.size();
  for (int l = 0; l < fm.cfg.n_layers; ++l)
    for (int id = 0; id < kNumLinears; ++id) {
      const auto& x = cap.x.at({l, linear_input_slot(id)});
      const int out = fm.layers[l].lin[id]->out_features();
      std::vector<float> a((size_t)n * out), b((size_t)n * out);
      fm.layers[l].lin[id]->forward(x.data(), n, a.data());
      set_active_isa(isa);
      pm.layers[l].lin[id]->forward(x.data(), n, b.data());
      set_active_isa(best_isa());
      double d = 0;
      for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (double)std::fabs(a[i] - b[i]));
      worst = std::max(worst, d / max_abs(a));
    }
  return worst;
}

double ppl(const Model& m, const std::vector<int>& ids) {
  PplOptions po;
  po.ctx = 128;
  po.max_windows = 8;
  po.progress = false;
  return perplexity(m, ids, po).ppl;
}

void check_config(const std::string& method, int abits, bool groups = true,
                  const std::string& binarizer = "") {
  omp_set_num_threads(1);  // small shapes: threads only add contention on a busy machine
  test::TempDir td;
  const std::string fq = td.file("fq");
  QuantizeOptions o = opts(method, abits);
  const bool rc_config = method == "arb-rc" || binarizer == "arb-rc";
  if (!groups) o.wq.groups = false;
  if (!binarizer.empty()) {  // bwla with another binarizer (no sign refinement there)
    o.binarizer = binarizer;
    o.wq.groups = groups;
    o.wq.sign_refine = 0;
    o.wq.block_size = 128;
  }
  // Layouts stored in the column-group form (their factors are kept by quantize).
  const std::string wm = method == "bwla" ? (binarizer.empty() ? o.binarizer : binarizer) : method;
  const bool group_form =
      wm == "arb-rc" || (o.wq.groups && (wm == "billm" || wm == "arb" || wm == "arb-x"));

  quantize_model(model_dir(), o, fq);
  auto ids = text_ids(model_dir(), 40000);
  std::vector<int> toks(ids.begin(), ids.begin() + 128);
  auto fm = load_model(fq);
  const int V = fm->cfg.vocab;
  const auto ref = logits_of(*fm, toks);
  const double ref_ppl = ppl(*fm, ids);
  // F32 scales, F16 scales, and F16 scales with int8 PSP factors.
  for (int variant = 0; variant < 3; ++variant) {
    const DType sd = variant == 0 ? DType::F32 : DType::F16;
    const bool psp8 = variant == 2;
    const std::string pk = td.file(std::string("packed-") + dtype_name(sd) + (psp8 ? "-psp8" : ""));
    PackOptions po;
    po.scale_dtype = sd;
    po.psp_dtype = psp8 ? PspStorage::I8 : PspStorage::ScaleDtype;
    // Parity of the decoder linears: head and embeddings as quantize left them
    // (fp32); the head options are measured below.
    po.head_dtype = po.embed_dtype = TableDtype::Keep;
    PackReport r = pack_quantized_dir(fq, pk, po);
    auto pm = load_model(pk);
    int lowrank16 = 0, lowrank8 = 0;
    for (auto& L : pm->layers)
      for (auto& lin : L.lin) {
        ASSERT_NE(dynamic_cast<const PackedLinear*>(lin.get()), nullptr);
        lowrank16 += lin->describe().find("f16") != std::string::npos;
        lowrank8 += lin->describe().find(" i8") != std::string::npos;
      }
    // An F16 file's PSP factors stay fp16 in memory (lowrank_add_f16), int8 ones int8.
    const bool rc = group_form;
    if (method == "bwla") {
      EXPECT_EQ(lowrank16 > 0, sd == DType::F16 && !psp8) << lowrank16 << " " << pm->layers[0].lin[0]->describe();
      EXPECT_EQ(lowrank8 > 0, psp8) << lowrank8 << " " << pm->layers[0].lin[0]->describe();
      EXPECT_EQ(load_json_file(pk + "/config.json")["quantization_config"]["format_version"],
                rc ? 4 : psp8 ? 3 : 2);
    }
    // Column-group layouts run as such (format 4), not as bit planes.
    EXPECT_EQ(pm->layers[0].lin[0]->describe().find("column groups") != std::string::npos, rc)
        << pm->layers[0].lin[0]->describe();
    if (rc) {
      EXPECT_EQ(load_json_file(pk + "/config.json")["quantization_config"]["format_version"], 4);
    }
    if (method == "bwla") {
      EXPECT_NE(pm->layers[0].lin[0]->describe().find("lowrank"), std::string::npos)
          << pm->layers[0].lin[0]->describe();
    }
    const auto got = logits_of(*pm, toks);
    const Diff d = diff(ref, got, V);
    const double lin = worst_linear(*fm, *pm, toks);
    const double p = ppl(*pm, ids);
    const double rel = std::fabs(p / ref_ppl - 1);
    const bool f32 = sd == DType::F32;
    std::printf("[%s a%d scales %s%s] planes %d, %.4f bits/weight; per-linear max %.2e; logits: max "
                "%.2e mean %.2e, %.1f%% of tokens > 1e-3; ppl %.5f vs %.5f (%.2e rel)\n",
                method.c_str(), abits, dtype_name(sd), psp8 ? " psp i8" : "", r.max_planes_used,
                r.bits_per_weight, lin, d.max_rel, d.mean_rel, 100 * d.frac_over, p, ref_ppl, rel);
    EXPECT_LE(lin, f32 ? 1e-5 : psp8 ? 1e-2 : 2e-3) << method << " " << dtype_name(sd) << psp8;
    EXPECT_LE(rel, f32 ? 1e-2 : 5e-2) << method << " " << dtype_name(sd) << psp8;
    if (f32) {
      // ARB-RC sums in fp32 (not exact integers), so every linear differs from
      // the fake-quant product by rounding and flips more levels downstream:
      // the forced-ISA bound below (measured 2.05e-2 with OKT + PSP at A6).
      EXPECT_LE(d.mean_rel, rc_config ? 3e-2 : 2e-2) << method;
    }
    if (!f32) continue;
    // Forced lower ISAs: the same packed model; integer sums are bit-exact, the
    // fp32 transform / low-rank paths differ in FMA use only.
    const Isa best = best_isa();
    for (Isa isa : {Isa::Scalar, Isa::Avx2}) {
      if (isa > best) continue;
      const double li = worst_linear(*pm, *pm, toks, isa);
      set_active_isa(isa);
      const Diff di = diff(got, logits_of(*pm, toks), V);
      set_active_isa(best);
      std::printf("  isa %s vs %s: per-linear max %.2e; logits max %.2e mean %.2e\n",
                  isa_name(isa), isa_name(best), li, di.max_rel, di.mean_rel);
      EXPECT_LE(li, 1e-5) << isa_name(isa);
      // Logits after 5 layers: a rounding-level difference in one layer flips
      // some 6-bit activation levels of the next, so this is a loose bound on an
      // amplified quantity (the per-linear check above is the strict one).
      // Measured at A6, scalar vs AVX-512: within 2e-2 on Intel Xeon (Ice Lake),
      // 2.25e-2 on AMD EPYC (Zen 4).
      EXPECT_LE(di.mean_rel, 3e-2) << isa_name(isa);
    }
  }
  // Head / embedding storage (stories260K: tied 512×64 table): f16 (pack's
  // default), int8 per row and 4-bit per 32 columns, against the fp32 head,
  // F32 scales. Not at A4: there, any perturbation of the embeddings flips
  // 4-bit activation levels and the PPL moves chaotically (measured: f16 +10%,
  // q8 +0.03%).
  // Once, with the one-plane default's config: the head's storage does not
  // depend on the linears' layout (measured with arb-rc: q8 +3.8 %, q4 +3.6 %,
  // the same chaos as at A4).
  for (const char* head : {"f16", "q8", "q4"}) {
    if (abits < 6 || rc_config) break;
    PackOptions po;
    po.scale_dtype = DType::F32;
    po.head_dtype = parse_table_dtype(head);
    const std::string pk = td.file(std::string("packed-head-") + head);
    pack_quantized_dir(fq, pk, po);
    const double rel = std::fabs(ppl(*load_model(pk), ids) / ref_ppl - 1);
    std::printf("[%s a%d head %s] ppl rel. change %.2e\n", method.c_str(), abits, head, rel);
    // q4 stores the embeddings at 4 bits as well (tied), so every layer's input
    // moves, not only the logits.
    EXPECT_LE(rel, std::string(head) == "q4" ? 8e-2 : 2.5e-2) << head;
  }
}

TEST(PackedE2E, BwlaW1A6) {
  BWLA_REQUIRE_SHARED(kModel);
  check_config("bwla", 6);
}

TEST(PackedE2E, RtnSignW1A4) {
  BWLA_REQUIRE_SHARED(kModel);
  check_config("rtn-sign", 4);
}

TEST(PackedE2E, ArbXW1A8) {
  BWLA_REQUIRE_SHARED(kModel);
  check_config("arb-x", 8, /*groups=*/false);
}

TEST(PackedE2E, ArbRcW1A6) {
  BWLA_REQUIRE_SHARED(kModel);
  check_config("arb-rc", 6);
}

TEST(PackedE2E, BwlaWithArbRcBinarizerW1A6) {
  BWLA_REQUIRE_SHARED(kModel);
  // OKT + PSP around the ARB-RC binarizer: the factors kept are those of the
  // PSP iteration whose Ŵ was kept.
  check_config("bwla", 6, /*groups=*/true, "arb-rc");
}

// A fake-quant directory without the column-group factors (as quantize wrote
// before format 4): the same weights, packed as bit planes.
std::string without_group_factors(const std::string& fq, const std::string& out) {
  std::filesystem::create_directories(out);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
    if (std::filesystem::exists(fq + "/" + f)) std::filesystem::copy_file(fq + "/" + f, out + "/" + f);
  SafeTensorsFile f(fq + "/model.safetensors");
  SafeTensorsWriter w;
  int dropped = 0;
  for (auto& n : f.names()) {
    if (n.rfind("__pad", 0) == 0) continue;
    if (n.find(".rc_") != std::string::npos) {
      ++dropped;
      continue;
    }
    const TensorView& t = f.get(n);
    w.add_view(n, t.dtype, t.shape, t.data, t.nbytes);
  }
  EXPECT_GT(dropped, 0);
  w.write(out + "/model.safetensors");
  return out;
}

TEST(PackedE2E, ArbXWithColumnGroupsPacksInTheColumnGroupForm) {
  BWLA_REQUIRE_SHARED(kModel);
  // The column-group layout packs in its own form (sign, group bits, salient
  // columns, per-group scales), with the same parity to fake quant.
  check_config("arb-x", 8, /*groups=*/true);
  // Without the stored factors the same weights pack as thermometer / grid
  // planes; both encodings are the same model (two independent encodings of
  // one Ŵ), and the group form is far smaller.
  omp_set_num_threads(1);
  test::TempDir td;
  quantize_model(model_dir(), opts("arb-x", 8), td.file("fq"));
  const std::string old = without_group_factors(td.file("fq"), td.file("fq-old"));
  PackOptions po;
  po.scale_dtype = DType::F32;
  po.head_dtype = po.embed_dtype = TableDtype::Keep;
  const PackReport rg = pack_quantized_dir(td.file("fq"), td.file("pg"), po);
  const PackReport rp = pack_quantized_dir(old, td.file("pp"), po);
  {  // --groups-as-planes: the planes form from a source that has the factors
    PackOptions pl = po;
    pl.groups_as_planes = true;
    const PackReport r2 = pack_quantized_dir(td.file("fq"), td.file("pp2"), pl);
    EXPECT_EQ(r2.rc_linears, 0);
    EXPECT_EQ(r2.decoder_linear_bytes, rp.decoder_linear_bytes);
  }
  EXPECT_EQ(rg.max_planes_used, 0);
  EXPECT_EQ(rg.rc_linears, 35);
  EXPECT_GE(rp.max_planes_used, 2);
  EXPECT_LT(rg.bits_per_weight, 0.7 * rp.bits_per_weight) << rg.bits_per_weight << " vs " << rp.bits_per_weight;
  auto ids = text_ids(model_dir(), 2000);
  std::vector<int> toks(ids.begin(), ids.begin() + 64);
  EXPECT_LE(worst_linear(*load_model(td.file("pp")), *load_model(td.file("pg")), toks), 1e-5);
  // Capped at one plane, the planes form is a clear error naming the linear, not a wrong model.
  po.max_planes = 1;
  try {
    pack_quantized_dir(old, td.file("p"), po);
    ADD_FAILURE() << "arb-x with groups packed in one plane";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("distinct weight values"), std::string::npos) << m;
    EXPECT_NE(m.find("model.layers.0."), std::string::npos) << m;
    EXPECT_NE(m.find("arb-x"), std::string::npos) << m;
  }
  EXPECT_FALSE(std::filesystem::exists(td.file("p")));
  // Blocks that are not whole 64-bit words: a clear error, nothing written.
  auto o100 = opts("arb-x", 8);
  o100.wq.block_size = 100;
  quantize_model(model_dir(), o100, td.file("fq100"));
  try {
    pack_quantized_dir(td.file("fq100"), td.file("p100"));
    ADD_FAILURE() << "column-group blocks of 100 columns packed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of 64"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(td.file("p100")));
}

}  // namespace
