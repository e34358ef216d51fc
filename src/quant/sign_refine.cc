#include "quant/sign_refine.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/blas_par.h"
#include "core/error.h"

namespace bwla {

namespace {

struct RowState {
  std::vector<float> alpha, mu;  // per block
  std::vector<int8_t> b;         // per column
};

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
  const long nb = (C + bs - 1) / bs;
  // One plane: at most two values per (row, block). Checked before the
  // parallel region (an exception must not leave it).
  for (long i = 0; i < R; ++i)
    for (long j0 = 0; j0 < C; j0 += bs) {
      const long j1 = std::min(C, j0 + bs);
      const float* v = w_hat.row(i).data();
      const float lo = *std::min_element(v + j0, v + j1), hi = *std::max_element(v + j0, v + j1);
      for (long j = j0; j < j1; ++j)
        BWLA_CHECK(v[j] == lo || v[j] == hi,
                   "refine_signs: row {} block {} has more than two values ({}, {}, {})", i,
                   j0 / bs, lo, v[j], hi);
    }
  // g_i = H·e_iᵀ for all rows: G = E·H (H symmetric).
  MatrixRM e = w - w_hat;
  MatrixRM g(R, C);
  par_sgemm_nt((int)R, (int)C, (int)C, 1.0f, e.data(), (int)C, h.data(), (int)C, 0.0f, g.data(),
               (int)C);
  // H·1_k (row independent): column k = Σ_{j in block k} H[:, j].
  MatrixD hm = MatrixD::Zero(C, nb);
  for (long j = 0; j < C; ++j)
    for (long r = 0; r < C; ++r) hm(r, j / bs) += h(r, j);
  std::vector<double> f0(R, 0.0), f1(R, 0.0);
  std::vector<long> flips(R, 0);
#pragma omp parallel
  {
    RowState s;
    s.alpha.resize(nb), s.mu.resize(nb), s.b.resize(C);
    MatrixD hv(C, 2 * nb), a(2 * nb, 2 * nb);
    Eigen::VectorXd rhs(2 * nb);
#pragma omp for schedule(dynamic, 4)
    for (long i = 0; i < R; ++i) {
      float* wh = w_hat.row(i).data();
      float* gi = g.row(i).data();
      const float* wi = w.row(i).data();
      // Decompose the row into per-block (α, μ, b).
      for (long k = 0; k < nb; ++k) {
        const long j0 = k * bs, j1 = std::min(C, j0 + bs);
        float lo = wh[j0], hi = wh[j0];
        for (long j = j0; j < j1; ++j) lo = std::min(lo, wh[j]), hi = std::max(hi, wh[j]);
        s.mu[k] = 0.5f * (hi + lo);
        s.alpha[k] = 0.5f * (hi - lo);
        for (long j = j0; j < j1; ++j) s.b[j] = wh[j] == hi ? 1 : -1;
      }
      double f = 0;
      for (long j = 0; j < C; ++j) f += (double)(wi[j] - wh[j]) * gi[j];
      f0[i] = f;
      for (int round = 0; round < rounds; ++round) {
        // Sign pass.
        for (int sweep = 0; sweep < sweep_limit; ++sweep) {
          long changed = 0;
          for (long j = 0; j < C; ++j) {
            const float al = s.alpha[j / bs];
            if (al == 0.f) continue;
            const double d = -2.0 * al * s.b[j];
            const double hjj = h(j, j);
            const double delta = -2.0 * d * gi[j] + d * d * hjj;
            if (!(delta < -1e-6 * d * d * hjj)) continue;
            s.b[j] = (int8_t)-s.b[j];
            wh[j] = s.mu[j / bs] + al * s.b[j];
            const float df = (float)d;
            const float* hj = h.row(j).data();
            for (long t = 0; t < C; ++t) gi[t] -= df * hj[t];
            f += delta;
            ++changed;
          }
          flips[i] += changed;
          if (!changed) break;
        }
        // Scale pass: basis v_{2k} = b ⊙ 1_k, v_{2k+1} = 1_k; solve A·d = Vᵀg.
        hv.setZero();
        for (long k = 0; k < nb; ++k) {
          const long j0 = k * bs, j1 = std::min(C, j0 + bs);
          for (long j = j0; j < j1; ++j) {
            const float sb = s.b[j];
            const float* hj = h.row(j).data();  // H symmetric: column j = row j
            double* col = hv.col(2 * k).data();
            for (long t = 0; t < C; ++t) col[t] += sb * hj[t];
          }
          hv.col(2 * k + 1) = hm.col(k);
        }
        for (long p = 0; p < 2 * nb; ++p) {
          const long k = p / 2, j0 = k * bs, j1 = std::min(C, j0 + bs);
          const bool sign = p % 2 == 0;
          double r = 0;
          for (long j = j0; j < j1; ++j) r += (sign ? s.b[j] : 1.0) * gi[j];
          rhs[p] = r;
          for (long q = 0; q < 2 * nb; ++q) {
            double acc = 0;
            for (long j = j0; j < j1; ++j) acc += (sign ? s.b[j] : 1.0) * hv(j, q);
            a(p, q) = acc;
          }
        }
        a = 0.5 * (a + a.transpose()).eval();
        a.diagonal().array() += 1e-9 * std::max(a.diagonal().mean(), 1e-30);
        const Eigen::VectorXd d = a.ldlt().solve(rhs);
        const double gain = d.dot(rhs);  // f drops by dᵀVᵀg (exact LS step)
        if (!d.allFinite() || !(gain > 0)) continue;
        for (long k = 0; k < nb; ++k) {
          double al = s.alpha[k] + d[2 * k], mu = s.mu[k] + d[2 * k + 1];
          s.alpha[k] = (float)al;
          s.mu[k] = (float)mu;
        }
        // α < 0 is the same layer with every sign of the block flipped.
        for (long k = 0; k < nb; ++k)
          if (s.alpha[k] < 0) {
            s.alpha[k] = -s.alpha[k];
            for (long j = k * bs; j < std::min(C, (k + 1) * bs); ++j) s.b[j] = (int8_t)-s.b[j];
          }
        for (long j = 0; j < C; ++j) wh[j] = s.mu[j / bs] + s.alpha[j / bs] * s.b[j];
        // g = H·(w − ŵ) from scratch for this row (float rounding of the scales).
        std::fill(gi, gi + C, 0.f);
        for (long j = 0; j < C; ++j) {
          const float ej = wi[j] - wh[j];
          const float* hj = h.row(j).data();
          for (long t = 0; t < C; ++t) gi[t] += ej * hj[t];
        }
        f = 0;
        for (long j = 0; j < C; ++j) f += (double)(wi[j] - wh[j]) * gi[j];
      }
      f1[i] = f;
    }
  }
  SignRefineStats st;
  for (long i = 0; i < R; ++i) st.f_before += f0[i], st.f_after += f1[i], st.flips += flips[i];
  return st;
}

}  // namespace bwla
