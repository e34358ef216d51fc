#include "pipeline/linear_quantizer.h"

#include <cblas.h>

#include <cmath>

#include "core/blas_par.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "quant/act_quant.h"
#include "quant/transform.h"
#include "quant/hessian.h"

namespace bwla {

json LinearQuantReport::to_json() const {
  json j = {{"name", name},
            {"rel_out_error", rel_out_error},
            {"rel_w_error", rel_w_error},
            {"bits_per_weight", n_weights ? storage_bits / n_weights : 0.0},
            {"act_clip", act_clip},
            {"seconds", seconds}};
  if (!extra.is_null()) j["extra"] = extra;
  return j;
}

namespace {

// S' = R·S·Rᵀ for x' = R·x (computed with the transform's fast row map).
MatrixD rotate_xtx(const InputTransform& t, const MatrixD& s) {
  // Memory passes dominate at 1B widths (apply_rows is ~4 % of it), so the
  // conversion, the transpose and the symmetrisation are tiled loops over
  // the two float buffers, with no other temporaries.
  const long n = s.rows();
  constexpr long kTile = 64;
  const long tiles = (n + kTile - 1) / kTile;
  MatrixRM f(n, n), ft(n, n);
#pragma omp parallel for schedule(static) if (n >= 1024)
  for (long i = 0; i < n; ++i)
    for (long j = 0; j < n; ++j) f(i, j) = (float)s(i, j);
  t.apply_rows(f.data(), n);  // rows s_i -> R s_i : S·Rᵀ
#pragma omp parallel for schedule(dynamic, 1) if (n >= 1024)
  for (long bi = 0; bi < tiles; ++bi)  // ft = fᵀ = R·S
    for (long bj = 0; bj < tiles; ++bj)
      for (long i = bi * kTile; i < std::min(n, (bi + 1) * kTile); ++i)
        for (long j = bj * kTile; j < std::min(n, (bj + 1) * kTile); ++j) ft(i, j) = f(j, i);
  t.apply_rows(ft.data(), n);  // R·S·Rᵀ (S symmetric)
  f.resize(0, 0);
  // Exactly symmetric: r_ij = (ft_ij + ft_ji) / 2 in double.
  MatrixD r(n, n);
#pragma omp parallel for schedule(dynamic, 1) if (n >= 1024)
  for (long bj = 0; bj < tiles; ++bj)
    for (long bi = 0; bi < tiles; ++bi)
      for (long j = bj * kTile; j < std::min(n, (bj + 1) * kTile); ++j)
        for (long i = bi * kTile; i < std::min(n, (bi + 1) * kTile); ++i)
          r(i, j) = 0.5 * ((double)ft(i, j) + (double)ft(j, i));
  return r;
}

double rel_err(const MatrixRM& ref, const MatrixRM& got) {
  double den = ref.squaredNorm();
  return den > 0 ? std::sqrt((ref - got).squaredNorm() / den) : 0.0;
}


// Step 1: the input transform of the linear (none, Hadamard from the seed, or
// OKT learned on W and the activation sample), OKT's diagnostics in rep.
std::shared_ptr<const InputTransform> make_transform(const MatrixRM& w, const LinearStats& st,
                                                     const QuantizeOptions& o,
                                                     uint64_t transform_seed,
                                                     LinearQuantReport& rep) {
  const TransformKind tr = o.transform_kind();
  if (tr == TransformKind::Hadamard)
    return std::shared_ptr<const InputTransform>(make_random_hadamard((int)w.cols(), transform_seed));
  if (tr != TransformKind::Okt) return nullptr;
  OktOptions oo = o.okt;
  oo.seed = transform_seed;
  OktResult r = learn_okt(w, o.okt.act_weight > 0 ? &st.sample : nullptr, oo);
  if (r.fell_back) log_warn("{}: OKT fell back: {}", rep.name, r.note);
  rep.extra["okt"] = {{"n1", r.n1}, {"n2", r.n2}, {"objective_first", r.objective.empty() ? 0.0 : r.objective.front()},
                      {"objective_last", r.objective.empty() ? 0.0 : r.objective.back()},
                      {"fell_back", r.fell_back}, {"seconds", r.seconds}};
  if (!r.transform) return nullptr;
  return std::shared_ptr<const InputTransform>(std::move(r.transform));
}

// Step 2 with PSP: Ŵ (in the transformed basis) and the low-rank factors of
// W ≈ rot⁻¹(Ŵ) + A·B, sign refinement on the final residual when asked.
// Returns the weight quantizer's storage bits.
double quantize_with_psp(const MatrixRM& w, const MatrixD* sp, const LinearStats& st,
                         const QuantizeOptions& o, const WeightQuantOptions& wq,
                         FakeQuantParts& parts, LinearQuantReport& rep) {
  const int out = (int)w.rows(), in = (int)w.cols();
  PspOptions po = o.psp_opt;
  if (o.rank_ratio > 0)
    po.rank = std::max(1, (int)std::lround(o.rank_ratio * std::min(out, in)));
  BWLA_CHECK(po.rank < std::min(out, in), "{}: PSP rank {} must be below min(out, in) = {}",
             rep.name, po.rank, std::min(out, in));
  double last_bits = 0;
  // S_rot is the same for every call: its Hessian is prepared once. With sign
  // refinement it keeps H as well, for the refinement after PSP.
  PreparedHessian hcache;
  if (wq.sign_refine > 0)
    hcache = sp ? prepare_hessian(*sp, st.n_tokens, wq.damp, true, rep.name)
                : identity_hessian(in, true);
  // Sign refinement runs once, on PSP's final residual (below), not inside
  // each alternation: PSP picks its pair by the Frobenius error, which the
  // output-metric refinement is not meant to lower.
  WeightQuantOptions wq_loop = wq;
  wq_loop.sign_refine = 0;
  std::shared_ptr<const RcFactors> last_rc, best_rc;
  Binarizer bin = [&](const MatrixRM& m) {
    WeightQuantResult r = quantize_weight(m, sp, st.n_tokens, wq_loop, &hcache);
    last_bits = r.storage_bits;
    last_rc = std::move(r.rc);
    return r.w_hat;
  };
  const Binarizer warm = xnor_row_binarizer();
  const int full_iters = o.effective_psp_full_iters();
  if (full_iters > 0) po.warm_iters = std::max(0, po.iters - full_iters);
  PspResult pr = run_psp(w, parts.transform.get(), bin, po, &warm, [&] { best_rc = last_rc; });
  parts.w_hat = std::move(pr.w_hat_rot);
  parts.rc = std::move(best_rc);
  parts.lr_a = std::move(pr.a);
  parts.lr_b = std::move(pr.b);
  if (wq.sign_refine > 0) {
    // Target of the binarized part: rot(W − A·B), in the metric of S_rot.
    MatrixRM target = w;
    par_sgemm_nt(out, in, (int)parts.lr_a.cols(), -1.0f, parts.lr_a.data(),
                 (int)parts.lr_a.cols(), MatrixRM(parts.lr_b.transpose()).data(),
                 (int)parts.lr_a.cols(), 1.0f, target.data(), in);
    if (parts.transform) apply_to_weight(*parts.transform, target);
    const SignRefineStats sr = refine_one_plane(target, parts.w_hat, hcache, wq);
    rep.extra["sign_refine"] = {{"metric_before", sr.f_before}, {"metric_after", sr.f_after},
                                {"flips", sr.flips}};
  }
  rep.extra["psp"] = {{"rank", parts.lr_a.cols()}, {"residual_first", pr.residual.empty() ? 0.0 : pr.residual.front()},
                      {"error", pr.error}, {"best_iter", pr.best_iter},
                      {"warm_iters", pr.warm_iters}};
  return last_bits;
}

// Step 4: relative output errors on the sample, of the weights alone and of
// weights and activations (bias left out of both sides).
void sample_errors(const MatrixRM& w, const LinearStats& st, const FakeQuantLinear& lin,
                   LinearQuantReport& rep) {
  const long n = st.sample.rows();
  const int out = (int)w.rows(), in = (int)w.cols();
  MatrixRM ref(n, out);
  par_sgemm_nt((int)n, out, in, 1.0f, st.sample.data(), in, w.data(), in, 0.0f, ref.data(), out);
  MatrixRM got(n, out);
  FakeQuantParts wo = lin.parts();
  wo.abits = 16;
  wo.bias.clear();
  FakeQuantLinear weights_only(std::move(wo));
  weights_only.forward(st.sample.data(), (int)n, got.data());
  rep.rel_w_error = rel_err(ref, got);
  FakeQuantParts full = lin.parts();
  full.bias.clear();
  FakeQuantLinear f2(std::move(full));
  f2.forward(st.sample.data(), (int)n, got.data());
  rep.rel_out_error = rel_err(ref, got);
}

}  // namespace

std::unique_ptr<FakeQuantLinear> quantize_linear(const MatrixRM& w, const std::vector<float>& bias,
                                                 const LinearStats& st, const QuantizeOptions& o,
                                                 uint64_t transform_seed, LinearQuantReport& rep,
                                                 MatrixD* release_xtx) {
  BWLA_ASSERT(!release_xtx || release_xtx == &st.xtx, "release_xtx must be &st.xtx{}", "");
  Timer timer;
  Timer phase;
  json times;  // seconds per phase, for the report
  auto lap = [&](const char* name) {
    times[name] = phase.seconds();
    phase.reset();
  };
  const int in = (int)w.cols();
  BWLA_CHECK(w.allFinite(), "{}: weights contain NaN/Inf", rep.name);
  FakeQuantParts parts;
  parts.abits = o.abits;
  parts.bias = bias;
  double side_bits = 0;
  // 1. Input transform.
  parts.transform = make_transform(w, st, o, transform_seed, rep);
  if (parts.transform) side_bits += parts.transform->storage_bits();
  // S in the transformed basis (no copy without a transform: S can be 250 MB).
  MatrixD s_rot;
  if (parts.transform) s_rot = rotate_xtx(*parts.transform, st.xtx);
  if (parts.transform && release_xtx) MatrixD().swap(*release_xtx);  // only s_rot is read below
  const MatrixD& s_used = parts.transform ? s_rot : st.xtx;
  lap("transform");
  const MatrixD* sp = st.n_tokens > 0 ? &s_used : nullptr;
  // 2. Weights (optionally with the PSP branch).
  WeightQuantOptions wq = o.wq;
  wq.layer = rep.name;
  double wbits_total = 0;
  if (o.psp) {
    wbits_total = quantize_with_psp(w, sp, st, o, wq, parts, rep);
    side_bits += psp_storage_bits((int)w.rows(), in, (int)parts.lr_a.cols());
  } else {
    MatrixRM wr = w;
    if (parts.transform) apply_to_weight(*parts.transform, wr);
    WeightQuantResult r = quantize_weight(wr, sp, st.n_tokens, wq);
    parts.w_hat = std::move(r.w_hat);
    parts.rc = std::move(r.rc);
    wbits_total = r.storage_bits;
    rep.extra["paper_bits_per_weight"] = r.paper_bits / (double)w.size();
  }
  BWLA_CHECK(parts.w_hat.allFinite(), "{}: quantized weights contain NaN/Inf", rep.name);
  lap("weights");
  // 3. Activation clip ratio on the transformed sample.
  if (o.abits < 16 && o.clip_search && st.sample.rows() > 0) {
    MatrixRM xs = st.sample;
    if (parts.transform) parts.transform->apply_rows(xs.data(), xs.rows());
    parts.act_clip = search_act_clip(xs.data(), xs.rows(), in, parts.w_hat, o.abits);
  }
  lap("act_clip");
  side_bits += 32;  // act clip ratio
  parts.storage_bits = wbits_total + side_bits;
  auto lin = std::make_unique<FakeQuantLinear>(std::move(parts));
  // 4. Errors on the sample.
  if (st.sample.rows() > 0) sample_errors(w, st, *lin, rep);
  lap("errors");
  rep.extra["phase_seconds"] = times;
  rep.storage_bits = lin->parts().storage_bits;
  rep.n_weights = (long)w.size();
  rep.act_clip = lin->parts().act_clip;
  rep.seconds = timer.seconds();
  return lin;
}

}  // namespace bwla
