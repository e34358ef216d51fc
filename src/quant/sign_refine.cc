#include "quant/sign_refine.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/blas_par.h"
#include "core/error.h"

namespace bwla {

namespace {

// A one-plane Ŵ's row state: per row block α, μ and the signs (b = ±1 as
// float, for the GEMMs); ŵ_ij = μ_ik + α_ik·b_ij for j in block k.
struct PlaneRows {
  long R, C, bs, nb;
  std::vector<float> alpha, mu;  // [R, nb]
  MatrixRM b;
  float& a_at(long i, long j) { return alpha[i * nb + j / bs]; }
  float& m_at(long i, long j) { return mu[i * nb + j / bs]; }
};

// Reads Ŵ off in one serial pass that also checks it is one plane (at most
// two values per row block); O(R·C) next to the O(R·C²) products.
PlaneRows read_one_plane(const MatrixRM& w_hat, long bs) {
  const long R = w_hat.rows(), C = w_hat.cols();
  PlaneRows pr{R, C, bs, (C + bs - 1) / bs, {}, {}, MatrixRM(R, C)};
  const long nb = pr.nb;
  pr.alpha.resize((size_t)R * nb);
  pr.mu.resize((size_t)R * nb);
  for (long i = 0; i < R; ++i) {
    const float* wh = w_hat.row(i).data();
    for (long k = 0; k < nb; ++k) {
      const long j0 = k * bs, j1 = std::min(C, j0 + bs);
      const float lo = *std::min_element(wh + j0, wh + j1), hi = *std::max_element(wh + j0, wh + j1);
      pr.mu[i * nb + k] = 0.5f * (hi + lo);
      pr.alpha[i * nb + k] = 0.5f * (hi - lo);
      for (long j = j0; j < j1; ++j) {
        BWLA_CHECK(wh[j] == lo || wh[j] == hi,
                   "refine_signs: row {} block {} has more than two values ({}, {}, {})", i, k,
                   lo, wh[j], hi);
        pr.b(i, j) = wh[j] == hi ? 1.f : -1.f;
      }
    }
  }
  return pr;
}

// Sign pass: coordinate descent per row, g kept exact by rank-1 updates.
void sign_pass(PlaneRows& pr, MatrixRM& w_hat, MatrixRM& g, const MatrixRM& h, int sweep_limit,
               std::vector<long>& flips) {
  const long R = pr.R, C = pr.C;
#pragma omp parallel for schedule(dynamic, 4)
  for (long i = 0; i < R; ++i) {
    float* wh = w_hat.row(i).data();
    float* gi = g.row(i).data();
    float* bi = pr.b.row(i).data();
    for (int sweep = 0; sweep < sweep_limit; ++sweep) {
      long changed = 0;
      for (long j = 0; j < C; ++j) {
        const float al = pr.a_at(i, j);
        if (al == 0.f) continue;
        const double d = -2.0 * al * bi[j];
        const double hjj = h(j, j);
        const double delta = -2.0 * d * gi[j] + d * d * hjj;
        if (!(delta < -1e-6 * d * d * hjj)) continue;
        bi[j] = -bi[j];
        wh[j] = pr.m_at(i, j) + al * bi[j];
        const float df = (float)d;
        const float* hj = h.row(j).data();
        for (long t = 0; t < C; ++t) gi[t] -= df * hj[t];
        ++changed;
      }
      flips[i] += changed;
      if (!changed) break;
    }
  }
}

// Scale pass, first half: per row A = VᵀHV over the basis v_2k = b ⊙ 1_k,
// v_2k+1 = 1_k (K = 2·nb). H·v for the sign vectors of block q is row
// q-block of (B ⊙ 1_q)·H: one product per block (y its scratch); hm[q] =
// Σ_{j in block q} H[:, j] serves the mask vectors.
void scale_normal_matrices(const PlaneRows& pr, const MatrixRM& h, const MatrixRM& hm,
                           std::vector<double>& A, MatrixRM& y) {
  const long R = pr.R, C = pr.C, bs = pr.bs, nb = pr.nb, K = 2 * nb;
  std::fill(A.begin(), A.end(), 0.0);
  for (long q = 0; q < nb; ++q) {
    const long q0 = q * bs, qn = std::min(C, q0 + bs) - q0;
    par_sgemm_nt((int)R, (int)C, (int)qn, 1.0f, pr.b.data() + q0, (int)C, h.data() + q0, (int)C,
                 0.0f, y.data(), (int)C);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < R; ++i) {
      double* a = A.data() + (size_t)i * K * K;
      const float* yi = y.row(i).data();
      const float* bi = pr.b.row(i).data();
      const float* hq = hm.row(q).data();
      for (long p = 0; p < nb; ++p) {
        const long j0 = p * bs, j1 = std::min(C, j0 + bs);
        double sb_s = 0, one_s = 0, sb_m = 0, one_m = 0;
        for (long j = j0; j < j1; ++j) {
          sb_s += (double)bi[j] * yi[j];
          one_s += yi[j];
          sb_m += (double)bi[j] * hq[j];
          one_m += hq[j];
        }
        // Column 2q (sign vector of block q), column 2q+1 (mask of block q).
        a[(2 * p) * K + 2 * q] = sb_s;
        a[(2 * p + 1) * K + 2 * q] = one_s;
        a[(2 * p) * K + 2 * q + 1] = sb_m;
        a[(2 * p + 1) * K + 2 * q + 1] = one_m;
      }
    }
  }
}

// Scale pass, second half: r = Vᵀg and the step d = A⁻¹r, which lowers the
// metric by dᵀr (exact least squares over α, μ given the signs); rows whose
// step would not lower it keep their scales.
void scale_step(PlaneRows& pr, const MatrixRM& g, const std::vector<double>& A, MatrixRM& w_hat) {
  const long R = pr.R, C = pr.C, bs = pr.bs, nb = pr.nb, K = 2 * nb;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < R; ++i) {
    const float* gi = g.row(i).data();
    const float* bi = pr.b.row(i).data();
    Eigen::Map<const Eigen::MatrixXd> a(A.data() + (size_t)i * K * K, K, K);
    Eigen::VectorXd r(K);
    for (long p = 0; p < nb; ++p) {
      const long j0 = p * bs, j1 = std::min(C, j0 + bs);
      double rs = 0, rm = 0;
      for (long j = j0; j < j1; ++j) rs += (double)bi[j] * gi[j], rm += gi[j];
      r[2 * p] = rs;
      r[2 * p + 1] = rm;
    }
    Eigen::MatrixXd as = 0.5 * (a + a.transpose());
    as.diagonal().array() += 1e-9 * std::max(as.diagonal().mean(), 1e-30);
    const Eigen::VectorXd d = as.ldlt().solve(r);
    if (!d.allFinite() || !(d.dot(r) > 0)) continue;
    float* wh = w_hat.row(i).data();
    float* bm = pr.b.row(i).data();
    for (long k = 0; k < nb; ++k) {
      float& al = pr.alpha[i * nb + k];
      float& m = pr.mu[i * nb + k];
      al = (float)(al + d[2 * k]);
      m = (float)(m + d[2 * k + 1]);
      // α < 0 is the same layer with every sign of the block flipped.
      if (al < 0) {
        al = -al;
        for (long j = k * bs; j < std::min(C, (k + 1) * bs); ++j) bm[j] = -bm[j];
      }
    }
    for (long j = 0; j < C; ++j) wh[j] = pr.m_at(i, j) + pr.a_at(i, j) * bm[j];
  }
}

}  // namespace

SignRefineStats refine_signs(const MatrixRM& w, MatrixRM& w_hat, const MatrixRM& h,
                             int block_cols, int rounds, int sweep_limit) {
  const long R = w.rows(), C = w.cols();
  BWLA_CHECK(w_hat.rows() == R && w_hat.cols() == C && h.rows() == C && h.cols() == C,
             "refine_signs: shapes W [{}, {}], Ŵ [{}, {}], H [{}, {}] disagree", R, C,
             w_hat.rows(), w_hat.cols(), h.rows(), h.cols());
  BWLA_CHECK(rounds >= 0 && sweep_limit >= 1 && block_cols >= 0,
             "refine_signs: rounds {} / sweep_limit {} / block_cols {} out of range", rounds,
             sweep_limit, block_cols);
  const long bs = block_cols > 0 && block_cols < C ? block_cols : C;
  PlaneRows pr = read_one_plane(w_hat, bs);
  // G = E·H (g_i = H·e_iᵀ; H symmetric), one product for all rows.
  MatrixRM g(R, C), e(R, C);
  auto compute_g = [&]() {
    e = w - w_hat;
    par_sgemm_nt((int)R, (int)C, (int)C, 1.0f, e.data(), (int)C, h.data(), (int)C, 0.0f,
                 g.data(), (int)C);
  };
  auto row_metric = [&](std::vector<double>& f) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < R; ++i) {
      double acc = 0;
      for (long j = 0; j < C; ++j) acc += (double)(w(i, j) - w_hat(i, j)) * g(i, j);
      f[i] = acc;
    }
  };
  compute_g();
  std::vector<double> f0(R, 0.0), f1(R, 0.0);
  std::vector<long> flips(R, 0);
  row_metric(f0);
  MatrixRM hm = MatrixRM::Zero(pr.nb, C);
  for (long j = 0; j < C; ++j) hm.row(j / bs) += h.row(j);
  std::vector<double> A((size_t)R * 4 * pr.nb * pr.nb);
  MatrixRM y(R, C);
  for (int round = 0; round < rounds; ++round) {
    sign_pass(pr, w_hat, g, h, sweep_limit, flips);
    scale_normal_matrices(pr, h, hm, A, y);
    scale_step(pr, g, A, w_hat);
    compute_g();  // from scratch: the float rounding of the new scales
  }
  row_metric(f1);
  SignRefineStats st;
  for (long i = 0; i < R; ++i) st.f_before += f0[i], st.f_after += f1[i], st.flips += flips[i];
  return st;
}

}  // namespace bwla
