#include "quant/psp.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "quant/okt.h"
#include "quant/okt_parallel.h"
#include "quant/psp_svd.h"

namespace bwla {

namespace {

double frob(const MatrixRM& m) { return std::sqrt(m.cast<double>().squaredNorm()); }

// ‖w − l − d‖_F in one pass (no temporaries), rows over OpenMP threads; the
// row sums are added in row order, so the norm does not depend on the threads.
double resid_norm(const MatrixRM& w, const MatrixRM& l, const MatrixRM& d) {
  const long rows = w.rows(), cols = w.cols();
  std::vector<double> row_sum(rows);
#pragma omp parallel for schedule(static) if (w.size() >= kOktParallelMin)
  for (long i = 0; i < rows; ++i) {
    const float *pw = w.row(i).data(), *pl = l.row(i).data(), *pd = d.row(i).data();
    float acc = 0;
    double row = 0;
    for (long j = 0; j < cols; ++j) {
      const float e = pw[j] - pl[j] - pd[j];
      acc += e * e;
      if ((j & 255) == 255) row += acc, acc = 0;  // fp32 partial sums of ≤ 256 terms
    }
    row_sum[i] = row + acc;
  }
  double total = 0;
  for (double v : row_sum) total += v;
  return std::sqrt(total);
}

MatrixRM binarize_checked(const Binarizer& binarize, const MatrixRM& x) {
  MatrixRM q = binarize(x);
  BWLA_CHECK(q.rows() == x.rows() && q.cols() == x.cols(),
             "run_psp: binarizer returned {}x{} for a {}x{} input", q.rows(), q.cols(), x.rows(),
             x.cols());
  BWLA_CHECK(q.allFinite(), "run_psp: binarizer returned non-finite values");
  return q;
}

}  // namespace

double psp_storage_bits(int out, int in, int rank) {
  BWLA_CHECK(out >= 0 && in >= 0 && rank >= 0, "psp_storage_bits: negative size");
  return 16.0 * (double)rank * ((double)out + (double)in);
}

Binarizer xnor_row_binarizer() {
  return [](const MatrixRM& x) { return xnor_binarize_rows(x); };
}

PspResult run_psp(const MatrixRM& w, const InputTransform* rot, const Binarizer& binarize,
                  const PspOptions& opt, const Binarizer* warm,
                  const std::function<void()>& on_best) {
  const long out = w.rows(), in = w.cols();
  BWLA_CHECK(out > 0 && in > 0, "run_psp: empty weight {}x{}", out, in);
  BWLA_CHECK(w.allFinite(), "run_psp: weight {}x{} has non-finite values", out, in);
  BWLA_CHECK(opt.rank >= 0 && opt.rank <= std::min(out, in),
             "run_psp: rank {} outside [0, {}] for a {}x{} weight", opt.rank, std::min(out, in),
             out, in);
  BWLA_CHECK(opt.iters >= 1, "run_psp: iters must be >= 1, got {}", opt.iters);
  BWLA_CHECK(!rot || rot->dim() == in, "run_psp: transform width {} != weight input width {}",
             rot ? rot->dim() : 0, in);
  BWLA_CHECK((bool)binarize, "run_psp: no binarizer");
  BWLA_CHECK(opt.warm_iters >= 0, "run_psp: warm_iters must be >= 0, got {}", opt.warm_iters);
  const int n_warm = warm && *warm && opt.rank > 0 ? std::min(opt.warm_iters, opt.iters - 1) : 0;
  const int r = opt.rank;
  EigenThreadLimit eigen_threads(w.size() < kOktParallelMin);
  const double wn = frob(w);

  // Paper initialisation: A Gaussian, B zero, so A·B = 0 at the start.
  Rng rng(opt.seed ^ 0x707370ull);
  MatrixRM a(out, r), b = MatrixRM::Zero(r, in);
  for (long i = 0; i < a.size(); ++i) a.data()[i] = (float)(rng.normal() / std::sqrt((double)in));
  MatrixRM l = MatrixRM::Zero(out, in);

  PspResult res;
  res.warm_iters = n_warm;
  double best = INFINITY;
  auto rel_error = [&](const MatrixRM& l_, const MatrixRM& d) {
    return wn > 0 ? resid_norm(w, l_, d) / wn : 0.0;
  };
  auto keep = [&](double e, const MatrixRM& a_, const MatrixRM& b_, const MatrixRM& what,
                  int it) {
    if (e < best) {
      best = e;
      res.a = a_;
      res.b = b_;
      res.w_hat_rot = what;
      res.error = e;
      res.best_iter = it;
      if (on_best) on_best();
    }
  };

  for (int it = 0; it < opt.iters; ++it) {
    // (i) binarize the rotated residual.
    MatrixRM wr = w - l;
    if (rot) rot->apply_rows(wr.data(), wr.rows());
    const bool warm_it = it < n_warm;
    MatrixRM what = binarize_checked(warm_it ? *warm : binarize, wr);
    MatrixRM d = what;  // rot⁻¹(Ŵ_rot) in the original basis
    if (rot) rot->apply_rows_inverse(d.data(), d.rows());
    const double e = rel_error(l, d);
    res.residual.push_back(e);
    if (!warm_it) keep(e, a, b, what, it);
    if (it + 1 == opt.iters || r == 0) break;

    // (ii) proximal low-rank step on what the binarized part misses.
    const MatrixRM target = w - d;
    const bool soft = opt.prox == PspOptions::Prox::SoftThreshold;
    const int k = soft ? std::min<int>(r + 1, (int)std::min(out, in)) : r;
    SvdFactors f = top_svd(target, k, opt.seed + 7919u * (uint64_t)(it + 1), opt.power_iters);
    VectorF s = f.s.head(r);
    if (soft) {
      const float lambda = opt.soft_lambda > 0 ? opt.soft_lambda : (k > r ? f.s[r] : 0.0f);
      s = (s.array() - lambda).max(0.0f).matrix();
    }
    const VectorF sq = s.array().sqrt().matrix();
    a = f.u.leftCols(r) * sq.asDiagonal();
    b = sq.asDiagonal() * f.v.leftCols(r).transpose();
    l.noalias() = a * b;
    // The pair (new A·B, current Ŵ_rot) is itself a valid model.
    if (!warm_it) keep(rel_error(l, d), a, b, what, it);
  }
  log_debug("run_psp: {}x{} rank {} error {:.5f} -> {:.5f} (best at iteration {})", out, in, r,
            res.residual.front(), res.error, res.best_iter);
  return res;
}

}  // namespace bwla
