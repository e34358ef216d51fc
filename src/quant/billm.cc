#include "quant/billm.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "quant/binarize.h"

namespace bwla {

namespace {

// Σ ω_i (v_i − v̂_i)² for the closed-form XNOR fit of v (μ = mean, α =
// mean|v − μ|), in two passes: with d = v − μ, s = sign(d),
// Σω(d − αs)² = Σωd² − 2αΣω|d| + α²Σω and Σωd² = Σωv² − 2μΣωv + μ²Σω.
// Entries with sel[i] != want are skipped (sel == nullptr: all).
double wxnor_err(const float* v, const float* om, int n, const uint8_t* sel = nullptr,
                 uint8_t want = 1) {
  double cnt = 0, sv = 0, sw = 0, swv = 0, swv2 = 0;
  for (int i = 0; i < n; ++i) {
    if (sel && sel[i] != want) continue;
    const double x = v[i], o = om[i];
    cnt += 1, sv += x, sw += o, swv += o * x, swv2 += o * x * x;
  }
  if (cnt == 0) return 0.0;
  const double mu = sv / cnt;
  double sa = 0, swa = 0;
  for (int i = 0; i < n; ++i) {
    if (sel && sel[i] != want) continue;
    const double a = std::fabs((double)v[i] - mu);
    sa += a, swa += om[i] * a;
  }
  const double alpha = sa / cnt;
  const double e = swv2 - 2 * mu * swv + mu * mu * sw - 2 * alpha * swa + alpha * alpha * sw;
  return std::max(e, 0.0);
}

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

}  // namespace

void BlockBinarizer::begin_block(int c0, const MatrixCM& wblk,
                                 const Eigen::Ref<const MatrixRM>& ublk) {
  const long R = wblk.rows();
  const int C = (int)wblk.cols();
  const MatrixRM w = wblk;  // row-major copy: rows contiguous
  std::vector<float> om(C);
  for (int j = 0; j < C; ++j) {
    const double d = ublk(j, j);
    om[j] = (float)(1.0 / (d * d));
  }
  GroupIds gid = GroupIds::Constant(R, C, 1);
  int k = 0;
  if (cfg_.groups && C > 1) {
    // 1. salience and ordering
    std::vector<double> sal(C, 0.0);
    for (long i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j) sal[j] += (double)w(i, j) * w(i, j);
    for (int j = 0; j < C; ++j) sal[j] *= om[j];
    std::vector<int> order(C);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return sal[a] > sal[b]; });
    // 2. number of salient columns
    const int kmax = std::max(0, std::min(cfg_.salient_max, C - 1));
    std::vector<double> err(kmax + 1, 0.0);
    std::vector<float> om_o(C);
    for (int j = 0; j < C; ++j) om_o[j] = om[order[j]];
#pragma omp parallel
    {
      std::vector<float> v(C), tmp;
      std::vector<double> local(kmax + 1, 0.0);
#pragma omp for schedule(static)
      for (long i = 0; i < R; ++i) {
        for (int j = 0; j < C; ++j) v[j] = w(i, order[j]);
        for (int kk = 0; kk <= kmax; ++kk)
          local[kk] += wresid_err(v.data(), om_o.data(), kk, tmp) +
                       wxnor_err(v.data() + kk, om_o.data() + kk, C - kk);
      }
#pragma omp critical
      for (int kk = 0; kk <= kmax; ++kk) err[kk] += local[kk];
    }
    k = (int)(std::min_element(err.begin(), err.end()) - err.begin());
    std::vector<uint8_t> is_sal(C, 0);
    for (int j = 0; j < k; ++j) is_sal[order[j]] = 1;
    // 3. magnitude split of the non-salient weights
    float maxabs = 0;
    for (long i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j)
        if (!is_sal[j]) maxabs = std::max(maxabs, std::fabs(w(i, j)));
    const int nc = std::max(1, cfg_.split_candidates);
    std::vector<double> serr(nc, 0.0);
#pragma omp parallel
    {
      std::vector<float> v, vw;
      std::vector<uint8_t> sel;
      std::vector<double> local(nc, 0.0);
#pragma omp for schedule(static)
      for (long i = 0; i < R; ++i) {
        v.clear(), vw.clear();
        for (int j = 0; j < C; ++j)
          if (!is_sal[j]) v.push_back(w(i, j)), vw.push_back(om[j]);
        const int n = (int)v.size();
        sel.resize(n);
        for (int t = 0; t < nc; ++t) {
          const float thr = maxabs * (float)(t + 1) / (float)(nc + 1);
          for (int q = 0; q < n; ++q) sel[q] = std::fabs(v[q]) <= thr ? 1 : 2;
          local[t] += wxnor_err(v.data(), vw.data(), n, sel.data(), 1) +
                      wxnor_err(v.data(), vw.data(), n, sel.data(), 2);
        }
      }
#pragma omp critical
      for (int t = 0; t < nc; ++t) serr[t] += local[t];
    }
    const int tb = (int)(std::min_element(serr.begin(), serr.end()) - serr.begin());
    const float thr = maxabs * (float)(tb + 1) / (float)(nc + 1);
    for (long i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j)
        gid(i, j) = is_sal[j] ? 0 : (std::fabs(w(i, j)) <= thr ? 1 : 2);
  }

  // 4. fit
  MatrixRM wh(R, C);
  double scale_count = 0;
  if (cfg_.refine == BinRefine::ArbRC) {
    const int it = cfg_.arb_iters;
    for (int g = 0; g < 3; ++g) {
      std::vector<uint8_t> colp(C, 0);
      bool any = false;
      for (long i = 0; i < R; ++i)
        for (int j = 0; j < C; ++j)
          if (gid(i, j) == g) colp[j] = 1, any = true;
      if (!any) continue;
      const double ncol = std::count(colp.begin(), colp.end(), 1);
      arb_rc_fit(w, gid, g, it, true, wh, nullptr);
      scale_count += 2.0 * R + ncol;
      if (g == 0) {  // second plane on the residual of the salient entries
        MatrixRM res = w - wh;
        MatrixRM wh2(R, C);
        arb_rc_fit(res, gid, 0, it, true, wh2, nullptr);
        for (long i = 0; i < R; ++i)
          for (int j = 0; j < C; ++j)
            if (gid(i, j) == 0) wh(i, j) += wh2(i, j);
        scale_count += (double)R + ncol;  // row + column scales; mean folded
      }
    }
  } else {
    // Effective output metric of the block for ArbX.
    MatrixD sF;
    if (cfg_.refine == BinRefine::ArbX) {
      MatrixD uf = ublk.cast<double>();
      MatrixD uinv = MatrixD::Identity(C, C);
      uf.triangularView<Eigen::Upper>().solveInPlace(uinv);
      sF = uinv * uinv.transpose();
    }
    long kept = 0, tried = 0;
#pragma omp parallel reduction(+ : scale_count, kept, tried)
    {
      std::vector<float> v, r, vh, vh2;
      std::vector<int> idx;
#pragma omp for schedule(static)
      for (long i = 0; i < R; ++i) {
        // basis for ArbX: per plane sign vectors and per group mask vectors
        std::vector<Eigen::VectorXd> basis;
        for (int g = 0; g < 3; ++g) {
          idx.clear();
          for (int j = 0; j < C; ++j)
            if (gid(i, j) == g) idx.push_back(j);
          const int n = (int)idx.size();
          if (!n) continue;
          v.resize(n), vh.resize(n);
          for (int t = 0; t < n; ++t) v[t] = w(i, idx[t]);
          BinaryFit f1 = fit_plane(v.data(), n, cfg_.refine, cfg_.arb_iters);
          binary_apply(v.data(), n, f1, vh.data());
          Eigen::VectorXd b1 = Eigen::VectorXd::Zero(C), m = Eigen::VectorXd::Zero(C);
          for (int t = 0; t < n; ++t) {
            b1[idx[t]] = v[t] >= f1.mu ? 1.0 : -1.0;
            m[idx[t]] = 1.0;
          }
          if (g == 0) {
            r.resize(n), vh2.resize(n);
            for (int t = 0; t < n; ++t) r[t] = v[t] - vh[t];
            BinaryFit f2 = fit_plane(r.data(), n, cfg_.refine, cfg_.arb_iters);
            binary_apply(r.data(), n, f2, vh2.data());
            Eigen::VectorXd b2 = Eigen::VectorXd::Zero(C);
            for (int t = 0; t < n; ++t) {
              vh[t] += vh2[t];
              b2[idx[t]] = r[t] >= f2.mu ? 1.0 : -1.0;
            }
            basis.push_back(b2);
            scale_count += 3;
          } else {
            scale_count += 2;
          }
          basis.push_back(b1);
          basis.push_back(m);
          for (int t = 0; t < n; ++t) wh(i, idx[t]) = vh[t];
        }
        if (cfg_.refine == BinRefine::ArbX && !basis.empty()) {
          const int K = (int)basis.size();
          Eigen::MatrixXd V(C, K);
          for (int q = 0; q < K; ++q) V.col(q) = basis[q];
          const Eigen::VectorXd wv = w.row(i).transpose().cast<double>();
          const Eigen::MatrixXd SV = sF * V;
          Eigen::MatrixXd G = V.transpose() * SV;
          const Eigen::VectorXd rhs = SV.transpose() * wv;
          G.diagonal().array() += 1e-10 * std::max(G.trace() / K, 1e-30);
          const Eigen::VectorXd coef = G.ldlt().solve(rhs);
          ++tried;
          if (coef.allFinite()) {
            const Eigen::VectorXd cand = V * coef;
            const Eigen::VectorXd d_old = wv - wh.row(i).transpose().cast<double>();
            const Eigen::VectorXd d_new = wv - cand;
            if (d_new.dot(sF * d_new) < d_old.dot(sF * d_old)) {
              wh.row(i) = cand.transpose().cast<float>();
              ++kept;
            }
          }
        }
      }
    }
    st_.xrefit_kept += kept;
    st_.xrefit_rows += tried;
  }
  BWLA_CHECK(wh.allFinite(), "binarizer: non-finite result in block at column {}", c0);
  q_ = wh;
  // storage
  st_.blocks += 1;
  st_.salient_cols += k;
  double bits = (double)R * C + (double)R * k + 16.0 * scale_count;
  if (cfg_.groups && C > 1) bits += (double)R * (C - k) + C;
  st_.storage_bits += bits;
  st_.paper_bits += (double)R * C + (double)R * k + ((cfg_.groups && C > 1) ? C : 0);
}

void BlockBinarizer::quantize_column(int, int jj, const MatrixCM& wblk, float* q) {
  Eigen::Map<Eigen::VectorXf>(q, wblk.rows()) = q_.col(jj);
}

MatrixRM binarize_quantize(const MatrixRM& w, const PreparedHessian& hp,
                           const BlockBinarizerConfig& cfg, int block_size, BinarizeStats* st) {
  MatrixRM wq = w;
  for (long j = 0; j < wq.cols(); ++j)
    if (hp.dead[j]) wq.col(j).setZero();
  BlockBinarizer bz(cfg);
  gptq_sweep(wq, hp.u, block_size, bz);
  if (st) *st = bz.stats();
  return wq;
}

}  // namespace bwla
