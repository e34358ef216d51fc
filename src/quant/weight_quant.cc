#include "quant/weight_quant.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/timer.h"
#include "quant/billm.h"
#include "quant/binarize.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "quant/sign_refine.h"

namespace bwla {

namespace {

// The weight methods and their policy, in one table (names are parsed once,
// here; the code below branches on the table's fields).
// Where sign refinement applies: the layouts with one α, μ per row block.
enum class OnePlane { Never, WithoutGroups, AtOneBit };

// Which quantizer runs a method.
enum class Quantizer { RtnSign, Rtn, Gptq, Block };

struct WeightMethodInfo {
  const char* name;
  std::vector<int> bits;
  bool needs_xtx;
  OnePlane refinable;
  bool whole_row_scales;  // one α, μ per row (not per sweep block) at 1 bit
  Quantizer quantizer;
  BinRefine refine = BinRefine::Xnor;  // Block: the block binarizer's fit
  bool always_groups = false;          // Block: column groups whatever opt.groups says
};

const std::vector<WeightMethodInfo>& method_table() {
  static const std::vector<WeightMethodInfo> t = {
      {"rtn-sign", {1}, false, OnePlane::Never, true, Quantizer::RtnSign},
      {"rtn", {2, 3, 4, 8}, false, OnePlane::Never, false, Quantizer::Rtn},
      {"gptq", {1, 2, 3, 4, 8}, true, OnePlane::AtOneBit, true, Quantizer::Gptq},
      {"billm", {1}, false, OnePlane::Never, false, Quantizer::Block, BinRefine::Xnor, true},
      {"arb", {1}, false, OnePlane::WithoutGroups, false, Quantizer::Block, BinRefine::Arb},
      {"arb-x", {1}, true, OnePlane::WithoutGroups, false, Quantizer::Block, BinRefine::ArbX},
      {"arb-rc", {1}, false, OnePlane::Never, false, Quantizer::Block, BinRefine::ArbRC},
  };
  return t;
}

const WeightMethodInfo* find_method(const std::string& m) {
  for (const auto& e : method_table())
    if (m == e.name) return &e;
  return nullptr;
}

}  // namespace

std::vector<std::string> weight_methods() {
  std::vector<std::string> v;
  for (const auto& e : method_table()) v.push_back(e.name);
  return v;
}

std::vector<int> weight_method_bits(const std::string& m) {
  const WeightMethodInfo* e = find_method(m);
  return e ? e->bits : std::vector<int>{};
}

bool weight_method_needs_xtx(const std::string& m) {
  const WeightMethodInfo* e = find_method(m);
  return e && e->needs_xtx;
}

bool weight_method_column_scales(const std::string& m) {
  const WeightMethodInfo* e = find_method(m);
  return e && e->refine == BinRefine::ArbRC;
}

bool weight_method_sign_refinable(const std::string& m, int wbits, bool groups) {
  const WeightMethodInfo* e = find_method(m);
  if (!e) return false;
  switch (e->refinable) {
    case OnePlane::WithoutGroups: return !groups;
    case OnePlane::AtOneBit: return wbits == 1;
    case OnePlane::Never: break;
  }
  return false;
}

SignRefineStats refine_one_plane(const MatrixRM& target, MatrixRM& w_hat, const PreparedHessian& hp,
                                 const WeightQuantOptions& opt) {
  const WeightMethodInfo* e = find_method(opt.method);
  BWLA_CHECK(e && weight_method_sign_refinable(opt.method, opt.wbits, opt.groups),
             "{}: sign refinement needs a one-plane layout, not method '{}'", opt.layer, opt.method);
  BWLA_CHECK(hp.h.rows() == target.cols(), "{}: sign refinement needs the damped Hessian H",
             opt.layer);
  return refine_signs(target, w_hat, hp.h, e->whole_row_scales ? 0 : opt.block_size,
                      opt.sign_refine);
}

MatrixRM rtn_quantize(const MatrixRM& w, int bits, int group_size) {
  MatrixRM out(w.rows(), w.cols());
  const long gs = group_size > 0 ? group_size : w.cols();
#pragma omp parallel for schedule(static) if (w.rows() >= 64)
  for (long i = 0; i < w.rows(); ++i)
    for (long c0 = 0; c0 < w.cols(); c0 += gs) {
      const long n = std::min<long>(gs, w.cols() - c0);
      const RtnGrid g = RtnGrid::fit(&w(i, c0), n, 1, bits);
      for (long j = c0; j < c0 + n; ++j) out(i, j) = g(w(i, j));
    }
  return out;
}

namespace {

MatrixRM rtn_sign(const MatrixRM& w) {
  MatrixRM out(w.rows(), w.cols());
#pragma omp parallel for schedule(static) if (w.rows() >= 64)
  for (long i = 0; i < w.rows(); ++i) {
    const BinaryFit f = xnor_fit(w.row(i).data(), (int)w.cols());
    binary_apply(w.row(i).data(), (int)w.cols(), f, out.row(i).data());
  }
  return out;
}

}  // namespace

WeightQuantResult quantize_weight(const MatrixRM& w, const MatrixD* xtx, long n_tokens,
                                  const WeightQuantOptions& opt, PreparedHessian* hessian_cache) {
  const std::string ctx = opt.layer.empty() ? std::string("quantize_weight") : opt.layer;
  const std::string& m = opt.method;
  const auto methods = weight_methods();
  BWLA_CHECK(std::find(methods.begin(), methods.end(), m) != methods.end(),
             "{}: unknown weight method '{}' (valid: {})", ctx, m, fmt::join(methods, ", "));
  const auto bits = weight_method_bits(m);
  BWLA_CHECK(std::find(bits.begin(), bits.end(), opt.wbits) != bits.end(),
             "{}: method '{}' does not support wbits={} (valid: {})", ctx, m, opt.wbits,
             fmt::join(bits, ", "));
  const long out = w.rows(), in = w.cols();
  BWLA_CHECK(out > 0 && in > 0, "{}: empty weight {}x{}", ctx, out, in);
  BWLA_CHECK(w.allFinite(), "{}: weight [{}, {}] contains NaN/Inf", ctx, out, in);
  BWLA_CHECK(opt.group_size >= 0, "{}: group_size must be >= 0, got {}", ctx, opt.group_size);
  BWLA_CHECK(opt.block_size >= 1, "{}: block_size must be >= 1, got {}", ctx, opt.block_size);
  BWLA_CHECK(opt.arb_iters >= 0 && opt.salient_max >= 0, "{}: arb_iters/salient_max must be >= 0",
             ctx);
  BWLA_CHECK(opt.sign_refine >= 0, "{}: sign_refine must be >= 0, got {}", ctx, opt.sign_refine);
  if (opt.sign_refine > 0)
    BWLA_CHECK(weight_method_sign_refinable(m, opt.wbits, opt.groups),
               "{}: sign refinement needs a one-plane layout (arb or arb-x without column "
               "groups, or gptq 1-bit), not method '{}'{}",
               ctx, m,
               opt.groups && find_method(m)->refinable == OnePlane::WithoutGroups
                   ? " with column groups"
                   : "");
  if (weight_method_needs_xtx(m))
    BWLA_CHECK(xtx != nullptr, "{}: method '{}' needs calibration statistics XᵀX", ctx, m);
  if (xtx) {
    BWLA_CHECK(xtx->rows() == in && xtx->cols() == in,
               "{}: XᵀX is {}x{} but weight [{}, {}] has {} input columns", ctx, xtx->rows(),
               xtx->cols(), out, in, in);
    BWLA_CHECK(n_tokens > 0, "{}: XᵀX given with n_tokens = {}", ctx, n_tokens);
  }

  Timer timer;
  WeightQuantResult r;
  const double nw = (double)out * in;
  const WeightMethodInfo& method = *find_method(m);  // checked above
  if (method.quantizer == Quantizer::RtnSign) {
    r.w_hat = rtn_sign(w);
    r.storage_bits = nw + 32.0 * out;
    r.paper_bits = nw;
  } else if (method.quantizer == Quantizer::Rtn) {
    r.w_hat = rtn_quantize(w, opt.wbits, opt.group_size);
    const long ng = opt.group_size > 0 ? (in + opt.group_size - 1) / opt.group_size : 1;
    r.storage_bits = opt.wbits * nw + 32.0 * out * ng;
    r.paper_bits = opt.wbits * nw;
  } else {
    const bool use_h = xtx != nullptr;
    PreparedHessian local;
    const bool want_h = opt.sign_refine > 0;
    const bool cached = hessian_cache && hessian_cache->u.rows() == in &&
                        (!want_h || hessian_cache->h.rows() == in);
    if (!cached)
      local = use_h ? prepare_hessian(*xtx, n_tokens, opt.damp, want_h, ctx)
                    : identity_hessian((int)in, want_h);
    if (hessian_cache && !cached) *hessian_cache = local;
    const PreparedHessian& hp = cached ? *hessian_cache : local;
    if (method.quantizer == Quantizer::Gptq) {
      r.w_hat = gptq_quantize(w, hp, opt.wbits, opt.wbits == 1 ? 0 : opt.group_size,
                              opt.block_size);
      if (opt.wbits == 1) {
        r.storage_bits = nw + 32.0 * out;
      } else {
        const long ng = opt.group_size > 0 ? (in + opt.group_size - 1) / opt.group_size : 1;
        r.storage_bits = opt.wbits * nw + 32.0 * out * ng;
      }
      r.paper_bits = opt.wbits * nw;
    } else {
      BlockBinarizerConfig cfg;
      cfg.refine = method.refine;
      cfg.groups = method.always_groups || opt.groups;
      cfg.arb_iters = opt.arb_iters;
      cfg.salient_max = opt.salient_max;
      BinarizeStats st;
      std::shared_ptr<RcFactors> rc;
      r.w_hat = binarize_quantize(w, hp, cfg, opt.block_size, &st, &rc);
      r.rc = std::move(rc);
      r.storage_bits = st.storage_bits;
      r.paper_bits = st.paper_bits;
      r.summary = fmt::format(" salient cols/block {:.1f}", st.blocks ? (double)st.salient_cols / st.blocks : 0.0);
      if (cfg.refine == BinRefine::ArbX)
        r.summary += fmt::format(" x-refit kept {}/{} rows", st.xrefit_kept, st.xrefit_rows);
    }
    if (opt.sign_refine > 0) {
      const SignRefineStats sr = refine_one_plane(w, r.w_hat, hp, opt);
      r.summary += fmt::format(" sign-refine {:.4g} -> {:.4g} ({} flips)", sr.f_before,
                               sr.f_after, sr.flips);
    }
    if (hp.retries) r.summary += fmt::format(" damping raised to {:.3g}", hp.lambda);
    if (!use_h) r.summary += " (no XᵀX: H = I)";
  }
  BWLA_CHECK(r.w_hat.allFinite(), "{}: quantized weight [{}, {}] is not finite (method {})", ctx,
             out, in, m);
  r.summary = fmt::format("{} w{}: {:.4f} bits/weight (paper convention {:.4f}), {:.2f}s{}", m,
                          opt.wbits, r.storage_bits / nw, r.paper_bits / nw, timer.seconds(),
                          r.summary);
  return r;
}

}  // namespace bwla
