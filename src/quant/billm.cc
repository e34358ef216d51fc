#include "quant/billm.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/blas_par.h"
#include "core/error.h"
#include "quant/binarize.h"
#include "quant/xnor_error.h"

namespace bwla {

namespace {

// Weighted error of residual (two-plane) XNOR binarization.
double wresid_err(const float* v, const float* om, int n, std::vector<float>& tmp) {
  if (n <= 0) return 0.0;
  BinaryFit f1 = xnor_fit(v, n);
  tmp.resize(n);
  for (int i = 0; i < n; ++i) tmp[i] = v[i] - f1(v[i]);
  return wxnor_err(tmp.data(), om, n);
}

BinaryFit fit_plane(const float* v, int n, BinRefine r, int iters) {
  return r == BinRefine::Xnor ? xnor_fit(v, n) : arb_fit(v, n, iters);
}

// ArbX's refit of one row: basis vectors v_0..v_{K-1} (columns of `basis`, C
// long; column `wcol` is w itself) and S_F times each (`sbasis`). With
// ŵ = V·c: (w − ŵ)ᵀS_F(w − ŵ) = wᵀS_Fw − 2cᵀ(VᵀS_Fw) + cᵀ(VᵀS_FV)c, minimized
// by the K×K normal equations. Returns whether the solution is finite and beats
// the current coefficients c0 (then in coef).
bool refit_coefficients(const double* basis, const double* sbasis, int C, int K, int wcol,
                        const double* c0v, Eigen::VectorXd& coef) {
  auto vcol = [&](int k) { return basis + (size_t)k * C; };
  auto scol = [&](int k) { return sbasis + (size_t)k * C; };
  auto dot = [&](const double* a, const double* b) {
    double acc = 0;
    for (int j = 0; j < C; ++j) acc += a[j] * b[j];
    return acc;
  };
  Eigen::MatrixXd G(K, K);
  Eigen::VectorXd rhs(K), c0(K);
  for (int p = 0; p < K; ++p) {
    rhs[p] = dot(vcol(p), scol(wcol));
    c0[p] = c0v[p];
    for (int q = 0; q <= p; ++q) G(p, q) = G(q, p) = dot(vcol(p), scol(q));
  }
  const double wsw = dot(vcol(wcol), scol(wcol));
  auto metric = [&](const Eigen::VectorXd& c) {  // plain loops: no BLAS call per row
    double m = wsw;
    for (int p = 0; p < K; ++p) {
      m -= 2 * c[p] * rhs[p];
      for (int q = 0; q < K; ++q) m += c[p] * G(p, q) * c[q];
    }
    return m;
  };
  Eigen::MatrixXd Gr = G;
  Gr.diagonal().array() += 1e-10 * std::max(G.trace() / K, 1e-30);
  coef = Gr.ldlt().solve(rhs);
  return coef.allFinite() && metric(coef) < metric(c0);
}

// 1. Columns by salience, most salient first: Σ_i w_ij² / U_jj² (U the
// block's inverse-Hessian factor: the column's share of the output error),
// ties in column order.
std::vector<int> salience_order(const MatrixRM& w, const std::vector<float>& om) {
  const long R = w.rows();
  const int C = (int)w.cols();
  std::vector<double> sal(C, 0.0);
  for (long i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) sal[j] += (double)w(i, j) * w(i, j);
  for (int j = 0; j < C; ++j) sal[j] *= om[j];
  std::vector<int> order(C);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return sal[a] > sal[b]; });
  return order;
}

// 2. How many of the most salient columns get a second (residual) plane: the
// count in [0, salient_max] with the least summed weighted error.
int salient_count(const MatrixRM& w, const std::vector<float>& om, const std::vector<int>& order,
                  int salient_max) {
  const long R = w.rows();
  const int C = (int)w.cols();
  const int kmax = std::max(0, std::min(salient_max, C - 1));
  std::vector<double> err(kmax + 1, 0.0);
  std::vector<float> om_o(C);
  for (int j = 0; j < C; ++j) om_o[j] = om[order[j]];
  // Per-row errors, summed in row order afterwards: the sums do not depend on
  // how the rows were shared among threads.
  std::vector<double> row_err((size_t)R * (kmax + 1));
#pragma omp parallel
  {
    std::vector<float> v(C), tmp;
#pragma omp for schedule(static)
    for (long i = 0; i < R; ++i) {
      for (int j = 0; j < C; ++j) v[j] = w(i, order[j]);
      double* e = row_err.data() + (size_t)i * (kmax + 1);
      for (int kk = 0; kk <= kmax; ++kk)
        e[kk] = wresid_err(v.data(), om_o.data(), kk, tmp) +
                wxnor_err(v.data() + kk, om_o.data() + kk, C - kk);
    }
  }
  for (long i = 0; i < R; ++i)
    for (int kk = 0; kk <= kmax; ++kk) err[kk] += row_err[(size_t)i * (kmax + 1) + kk];
  return (int)(std::min_element(err.begin(), err.end()) - err.begin());
}

// 3. The non-salient weights of each row split by magnitude at one threshold
// for the block (the best of `candidates` evenly spaced ones): group 1 at or
// below it, 2 above; salient columns are group 0.
void split_by_magnitude(const MatrixRM& w, const std::vector<float>& om,
                        const std::vector<uint8_t>& is_sal, int candidates, GroupIds& gid) {
  const long R = w.rows();
  const int C = (int)w.cols();
  float maxabs = 0;
  for (long i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j)
      if (!is_sal[j]) maxabs = std::max(maxabs, std::fabs(w(i, j)));
  const int nc = std::max(1, candidates);
  std::vector<double> serr(nc, 0.0), row_serr((size_t)R * nc);  // per row, as above
#pragma omp parallel
  {
    SortedRow sr;
    std::vector<float> v, vw;
#pragma omp for schedule(static)
    for (long i = 0; i < R; ++i) {
      v.clear(), vw.clear();
      for (int j = 0; j < C; ++j)
        if (!is_sal[j]) v.push_back(w(i, j)), vw.push_back(om[j]);
      sr.build(v.data(), vw.data(), (int)v.size());
      for (int t = 0; t < nc; ++t) {
        const float thr = maxabs * (float)(t + 1) / (float)(nc + 1);
        row_serr[(size_t)i * nc + t] = sr.split_err(thr);
      }
    }
  }
  for (long i = 0; i < R; ++i)
    for (int t = 0; t < nc; ++t) serr[t] += row_serr[(size_t)i * nc + t];
  const int tb = (int)(std::min_element(serr.begin(), serr.end()) - serr.begin());
  const float thr = maxabs * (float)(tb + 1) / (float)(nc + 1);
  for (long i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j)
      gid(i, j) = is_sal[j] ? 0 : (std::fabs(w(i, j)) <= thr ? 1 : 2);
}

}  // namespace

void BlockBinarizer::begin_block(int c0, const MatrixCM& wblk,
                                 const Eigen::Ref<const MatrixRM>& ublk) {
  const long R = wblk.rows();
  const int C = (int)wblk.cols();
  const MatrixRM w = wblk;  // row-major copy: rows contiguous
  std::vector<float> om(C);  // each column's output-error weight 1 / U_jj²
  for (int j = 0; j < C; ++j) {
    const double d = ublk(j, j);
    om[j] = (float)(1.0 / (d * d));
  }
  GroupIds gid = GroupIds::Constant(R, C, 1);
  int k = 0;
  if (cfg_.groups && C > 1) {
    const std::vector<int> order = salience_order(w, om);
    k = salient_count(w, om, order, cfg_.salient_max);
    std::vector<uint8_t> is_sal(C, 0);
    for (int j = 0; j < k; ++j) is_sal[order[j]] = 1;
    split_by_magnitude(w, om, is_sal, cfg_.split_candidates, gid);
  }

  // 4. fit
  MatrixRM wh(R, C);
  if (rc_ && cfg_.refine != BinRefine::ArbRC)
    for (int p = 0; p < RcFactors::kPlanes; ++p)
      for (int j = 0; j < C; ++j) rc_->C(p, c0 + j) = 1.0f;
  const double scale_count = cfg_.refine == BinRefine::ArbRC ? fit_arb_rc(c0, w, gid, wh)
                                                             : fit_planes(c0, w, ublk, gid, wh);
  BWLA_CHECK(wh.allFinite(), "binarizer: non-finite result in block at column {}", c0);
  q_ = wh;
  count_storage(R, C, k, scale_count);
}

// ARB-RC on each group of the block (row and column scales; a second plane on
// the salient group's residual). Returns the number of scales stored.
double BlockBinarizer::fit_arb_rc(int c0, const MatrixRM& w, const GroupIds& gid, MatrixRM& wh) {
  const long R = w.rows();
  const int C = (int)w.cols();
  double scale_count = 0;
  const int it = cfg_.arb_iters;
  for (int g = 0; g < 3; ++g) {
    std::vector<uint8_t> colp(C, 0);
    bool any = false;
    for (long i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j)
        if (gid(i, j) == g) colp[j] = 1, any = true;
    if (!any) continue;
    const double ncol = std::count(colp.begin(), colp.end(), 1);
    ArbRcFit f1, f2;
    arb_rc_fit(w, gid, g, it, true, wh, nullptr, rc_ ? &f1 : nullptr);
    scale_count += 2.0 * R + ncol;
    if (g == 0) {  // second plane on the residual of the salient entries
      MatrixRM res = w - wh;
      MatrixRM wh2(R, C);
      arb_rc_fit(res, gid, 0, it, true, wh2, nullptr, rc_ ? &f2 : nullptr);
      for (long i = 0; i < R; ++i)
        for (int j = 0; j < C; ++j)
          if (gid(i, j) == 0) wh(i, j) += wh2(i, j);
      scale_count += (double)R + ncol;  // row + column scales; mean folded
    }
    if (rc_) record_rc(c0, g, gid, f1, g == 0 ? &f2 : nullptr);
  }
  return scale_count;
}

// ArbX's basis of one row: per group a sign-plane vector and a mask vector, a
// second sign plane for the salient group (columns of C doubles, zero outside
// the group), and the coefficients of the current fit (ŵ_i = V_i·c).
struct BlockBinarizer::RowBasis {
  double* cols = nullptr;  // null: no refit
  int C = 0;
  int K = 0;               // columns used
  double* coef0 = nullptr;
  double* col(int k) const { return cols + (size_t)k * C; }
};

// A thread's buffers for fit_row_groups.
struct BlockBinarizer::RowScratch {
  std::vector<float> v, r, vh, vh2;
  std::vector<int> idx;
};

namespace {

// S_F = U⁻¹·U⁻ᵀ for the block's upper Cholesky factor U of the inverse
// Hessian: the output metric ArbX refits the coefficients in.
MatrixD output_metric(const Eigen::Ref<const MatrixRM>& ublk) {
  const int C = (int)ublk.cols();
  MatrixD uf = ublk.cast<double>();
  MatrixD uinv = MatrixD::Identity(C, C);
  uf.triangularView<Eigen::Upper>().solveInPlace(uinv);
  return uinv * uinv.transpose();
}

}  // namespace

double BlockBinarizer::fit_row_groups(long i, int c0, const MatrixRM& w, const GroupIds& gid,
                                      MatrixRM& wh, RowBasis& basis, RowScratch& s) {
  const int C = (int)w.cols();
  const bool refit = basis.cols != nullptr;
  double scale_count = 0;
  for (int g = 0; g < 3; ++g) {
    s.idx.clear();
    for (int j = 0; j < C; ++j)
      if (gid(i, j) == g) s.idx.push_back(j);
    const std::vector<int>& idx = s.idx;
    const int n = (int)idx.size();
    if (!n) continue;
    std::vector<float>&v = s.v, &r = s.r, &vh = s.vh, &vh2 = s.vh2;
    v.resize(n), vh.resize(n);
    for (int t = 0; t < n; ++t) v[t] = w(i, idx[t]);
    BinaryFit f1 = fit_plane(v.data(), n, cfg_.refine, cfg_.arb_iters), f2;
    binary_apply(v.data(), n, f1, vh.data());
    int mask_k = -1;
    if (refit) {
      double* b1 = basis.col(basis.K);
      double* m = basis.col(basis.K + 1);
      for (int t = 0; t < n; ++t) {
        b1[idx[t]] = v[t] >= f1.mu ? 1.0 : -1.0;
        m[idx[t]] = 1.0;
      }
      basis.coef0[basis.K] = f1.alpha;
      basis.coef0[basis.K + 1] = f1.mu;
      mask_k = basis.K + 1;
      basis.K += 2;
    }
    if (g == 0) {  // second plane on the residual of the salient entries
      r.resize(n), vh2.resize(n);
      for (int t = 0; t < n; ++t) r[t] = v[t] - vh[t];
      f2 = fit_plane(r.data(), n, cfg_.refine, cfg_.arb_iters);
      binary_apply(r.data(), n, f2, vh2.data());
      for (int t = 0; t < n; ++t) vh[t] += vh2[t];
      if (refit) {
        double* b2 = basis.col(basis.K);
        for (int t = 0; t < n; ++t) b2[idx[t]] = r[t] >= f2.mu ? 1.0 : -1.0;
        basis.coef0[basis.K] = f2.alpha;
        basis.coef0[mask_k] += f2.mu;  // the second plane's offset folds into μ
        basis.K += 1;
      }
      scale_count += 3;
    } else {
      scale_count += 2;
    }
    for (int t = 0; t < n; ++t) wh(i, idx[t]) = vh[t];
    if (rc_) {  // the group's factors, column scales 1 (rows: one thread each)
      RcFactors& f = *rc_;
      const int b = c0 / f.block_cols, k = g == 0 ? 0 : g + 1;
      f.A(k, i, b) = f1.alpha;
      f.M(g, i, b) = f1.mu + (g == 0 ? f2.mu : 0.0f);
      if (g == 0) f.A(1, i, b) = f2.alpha;
      for (int t = 0; t < n; ++t) {
        uint8_t q = (uint8_t)g;
        if (v[t] >= f1.mu) q |= RcFactors::kSign;
        if (g == 0 && r[t] >= f2.mu) q |= RcFactors::kSign2;
        f.code[(size_t)i * f.cols + c0 + idx[t]] = q;
      }
    }
  }
  return scale_count;
}

void BlockBinarizer::record_refit(long i, int c0, const GroupIds& gid, const Eigen::VectorXd& coef,
                                  int K) {
  // The refitted coefficients, in fit_row_groups' basis order.
  RcFactors& f = *rc_;
  const int b = c0 / f.block_cols;
  int p = 0;
  for (int g = 0; g < 3; ++g) {
    bool any = false;
    for (int j = 0; j < gid.cols() && !any; ++j) any = gid(i, j) == g;
    if (!any) continue;
    f.A(g == 0 ? 0 : g + 1, i, b) = (float)coef[p];
    f.M(g, i, b) = (float)coef[p + 1];
    p += 2;
    if (g == 0) f.A(1, i, b) = (float)coef[p++];
  }
  BWLA_ASSERT(p == K, "row {}: {} refit coefficients for {} basis vectors", i, p, K);
}

// One sign plane per group with its α and μ (XNOR or ARB fits; a second plane
// on the salient group's residual), then for ArbX each row's coefficients
// refitted at once in the block's output metric. Rows are taken in chunks;
// S_F·[V_i | w_i] for the whole chunk is one BLAS product, the K×K systems are
// then solved per row. Returns the number of scales stored.
double BlockBinarizer::fit_planes(int c0, const MatrixRM& w, const Eigen::Ref<const MatrixRM>& ublk,
                                  const GroupIds& gid, MatrixRM& wh) {
  const long R = w.rows();
  const int C = (int)w.cols();
  double scale_count = 0;
  const bool refit = cfg_.refine == BinRefine::ArbX;
  const MatrixD sF = refit ? output_metric(ublk) : MatrixD();
  // At most 7 basis columns per row (two per group and the salient group's
  // second plane); one plane (no groups) has 2, and the S_F product is then
  // 3/8 of the grouped case's.
  constexpr int kMaxBasis = 7;
  const int nbasis_max = cfg_.groups && C > 1 ? kMaxBasis : 2;
  const int KB = nbasis_max + 1;  // column nbasis_max holds w_i itself
  const long chunk = std::min<long>(R, 512);
  MatrixD V, SV;
  std::vector<int> nbasis;
  std::vector<std::array<double, kMaxBasis>> coef0;
  long kept = 0, tried = 0;
  for (long r0 = 0; r0 < R; r0 += chunk) {
    const long nr = std::min(chunk, R - r0);
    if (refit) {
      V.setZero(C, nr * KB);
      nbasis.assign(nr, 0);
      coef0.assign(nr, {});
    }
#pragma omp parallel reduction(+ : scale_count)
    {
      RowScratch scratch;
#pragma omp for schedule(static)
      for (long ii = 0; ii < nr; ++ii) {
        const long i = r0 + ii;
        RowBasis basis;
        if (refit) basis = RowBasis{V.col(ii * KB).data(), C, 0, coef0[ii].data()};
        scale_count += fit_row_groups(i, c0, w, gid, wh, basis, scratch);
        if (refit) {
          double* wc = basis.col(nbasis_max);
          for (int j = 0; j < C; ++j) wc[j] = w(i, j);
          nbasis[ii] = basis.K;
        }
      }
    }
    if (!refit) continue;
    SV.resize(C, V.cols());
    // S_F·V in groups of rows fixed by the shape (KB columns of V per row).
    for_fixed_chunks(nr, fixed_row_chunks(nr, (long)C * C * nr * KB), 1, [&](long i0, long i1) {
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, C, (int)((i1 - i0) * KB), C, 1.0,
                  sF.data(), C, V.col(i0 * KB).data(), C, 0.0, SV.col(i0 * KB).data(), C);
    });
#pragma omp parallel for schedule(static) reduction(+ : kept, tried)
    for (long ii = 0; ii < nr; ++ii) {
      const int K = nbasis[ii];
      if (!K) continue;
      const long i = r0 + ii;
      const double* base = V.col(ii * KB).data();
      Eigen::VectorXd coef;
      ++tried;
      if (!refit_coefficients(base, SV.col(ii * KB).data(), C, K, nbasis_max, coef0[ii].data(),
                              coef))
        continue;
      for (int j = 0; j < C; ++j) {
        double acc = 0;
        for (int p = 0; p < K; ++p) acc += base[(size_t)p * C + j] * coef[p];
        wh(i, j) = (float)acc;
      }
      ++kept;
      if (rc_) record_refit(i, c0, gid, coef, K);
    }
  }
  st_.xrefit_kept += kept;
  st_.xrefit_rows += tried;
  return scale_count;
}

// Storage of one block: a sign per weight, a second sign per salient weight,
// fp16 scales and, with groups, a group bit per non-salient weight and a
// salient-column bitmap.
void BlockBinarizer::count_storage(long R, int C, int k, double scale_count) {
  st_.blocks += 1;
  st_.salient_cols += k;
  double bits = (double)R * C + (double)R * k + 16.0 * scale_count;
  if (cfg_.groups && C > 1) bits += (double)R * (C - k) + C;
  st_.storage_bits += bits;
  st_.paper_bits += (double)R * C + (double)R * k + ((cfg_.groups && C > 1) ? C : 0);
}

void BlockBinarizer::record_rc(int c0, int g, const GroupIds& gid, const ArbRcFit& f1,
                               const ArbRcFit* f2) {
  RcFactors& rc = *rc_;
  BWLA_ASSERT(c0 % rc.block_cols == 0 && gid.rows() == rc.rows && c0 + gid.cols() <= rc.cols &&
                  gid.cols() <= rc.block_cols,
              "ARB-RC factors: block at column {} of width {} in a {}x{} matrix of {}-column blocks",
              c0, gid.cols(), rc.rows, rc.cols, rc.block_cols);
  const int b = c0 / rc.block_cols, k = g == 0 ? 0 : g + 1;
  for (long i = 0; i < gid.rows(); ++i) {
    rc.A(k, i, b) = (float)f1.a[i];
    rc.M(g, i, b) = (float)(f1.mu[i] + (f2 ? f2->mu[i] : 0.0));  // the second plane's offset folds in
    if (f2) rc.A(1, i, b) = (float)f2->a[i];
  }
  for (long j = 0; j < gid.cols(); ++j) {
    rc.C(k, c0 + j) = (float)f1.c[j];
    if (f2) rc.C(1, c0 + j) = (float)f2->c[j];
  }
  for (long i = 0; i < gid.rows(); ++i)
    for (long j = 0; j < gid.cols(); ++j) {
      if (gid(i, j) != g) continue;
      uint8_t q = (uint8_t)g;
      if (f1.b(i, j) > 0) q |= RcFactors::kSign;
      if (f2 && f2->b(i, j) > 0) q |= RcFactors::kSign2;
      rc.code[(size_t)i * rc.cols + c0 + j] = q;
    }
}

void BlockBinarizer::quantize_column(int, int jj, const MatrixCM& wblk, float* q) {
  Eigen::Map<Eigen::VectorXf>(q, wblk.rows()) = q_.col(jj);
}

MatrixRM binarize_quantize(const MatrixRM& w, const PreparedHessian& hp,
                           const BlockBinarizerConfig& cfg, int block_size, BinarizeStats* st,
                           std::shared_ptr<RcFactors>* rc) {
  MatrixRM wq = w;
  for (long j = 0; j < wq.cols(); ++j)
    if (hp.dead[j]) wq.col(j).setZero();
  BlockBinarizer bz(cfg);
  if (rc && (cfg.refine == BinRefine::ArbRC || cfg.groups))
    bz.record_rc_factors((int)w.rows(), (int)w.cols(), block_size);
  gptq_sweep(wq, hp.u, block_size, bz);
  if (st) *st = bz.stats();
  if (rc) *rc = bz.rc_factors();
  return wq;
}

}  // namespace bwla
