#include "quant/gptq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/blas_par.h"
#include "core/error.h"

namespace bwla {

void gptq_sweep(MatrixRM& w, const MatrixRM& u, int block_size, ColumnQuantizer& qz) {
  const long out = w.rows(), in = w.cols();
  BWLA_ASSERT(u.rows() == in && u.cols() == in, "U {}x{} vs W cols {}", u.rows(), u.cols(), in);
  BWLA_ASSERT(block_size >= 1, "block_size {}", block_size);
  Eigen::VectorXf q(out);
  for (long c0 = 0; c0 < in; c0 += block_size) {
    const long nb = std::min<long>(block_size, in - c0), c1 = c0 + nb;
    MatrixCM w1 = w.middleCols(c0, nb);
    MatrixCM err(out, nb);
    qz.begin_block((int)c0, w1, u.block(c0, c0, nb, nb));
    for (long jj = 0; jj < nb; ++jj) {
      const long j = c0 + jj;
      qz.quantize_column((int)j, (int)jj, w1, q.data());
      const float d = u(j, j);
      err.col(jj) = (w1.col(jj) - q) / d;
      w1.col(jj) = q;
      const long rest = nb - jj - 1;
      if (rest > 0)
        w1.rightCols(rest).noalias() -= err.col(jj) * u.row(j).segment(j + 1, rest);
    }
    w.middleCols(c0, nb) = w1;
    // Trailing update W[:, c1:] −= Err·U[c0:c1, c1:] through OpenBLAS (Eigen's own
    // GEMM is compiled for SSE2 in the portable build), in row blocks fixed by
    // the shape over the OpenMP threads. Err is column-major.
    if (c1 < in) {
      const long rest = in - c1;
      const long chunks = fixed_row_chunks(out, out * rest * nb);
      for_fixed_chunks(out, chunks, 1, [&](long r0, long r1) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(r1 - r0), (int)rest, (int)nb,
                    -1.0f, err.data() + r0, (int)out, u.data() + c0 * in + c1, (int)in, 1.0f,
                    w.data() + r0 * in + c1, (int)in);
      });
    }
  }
}

RtnGrid RtnGrid::fit(const float* v, long n, long stride, int bits) {
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  for (long i = 0; i < n; ++i) {
    mn = std::min(mn, v[i * stride]);
    mx = std::max(mx, v[i * stride]);
  }
  RtnGrid g;
  g.maxq = (float)((1u << bits) - 1);
  g.lo = mn;
  g.scale = (mx - mn) / g.maxq;
  return g;
}

namespace {

class SignRowQuantizer : public ColumnQuantizer {
 public:
  explicit SignRowQuantizer(const MatrixRM& w) : alpha_(w.rows()), mu_(w.rows()) {
    for (long i = 0; i < w.rows(); ++i) {
      const double mu = w.row(i).cast<double>().mean();
      mu_[i] = (float)mu;
      alpha_[i] = (float)(w.row(i).cast<double>().array() - mu).abs().mean();
    }
  }
  void quantize_column(int, int jj, const MatrixCM& wblk, float* q) override {
    for (long i = 0; i < wblk.rows(); ++i)
      q[i] = wblk(i, jj) >= mu_[i] ? mu_[i] + alpha_[i] : mu_[i] - alpha_[i];
  }

 private:
  std::vector<float> alpha_, mu_;
};

class GridQuantizer : public ColumnQuantizer {
 public:
  GridQuantizer(const MatrixRM& w, int bits, int group_size)
      : bits_(bits), gs_(group_size), grids_(w.rows()) {
    if (gs_ <= 0)
      for (long i = 0; i < w.rows(); ++i) grids_[i] = RtnGrid::fit(w.row(i).data(), w.cols(), 1, bits);
  }
  void quantize_column(int j, int jj, const MatrixCM& wblk, float* q) override {
    const long rows = wblk.rows();
    if (gs_ > 0 && j % gs_ == 0) {
      const long len = std::min<long>(gs_, wblk.cols() - jj);
      for (long i = 0; i < rows; ++i)
        grids_[i] = RtnGrid::fit(&wblk(i, jj), len, wblk.rows(), bits_);
    }
    for (long i = 0; i < rows; ++i) q[i] = grids_[i](wblk(i, jj));
  }

 private:
  int bits_, gs_;
  std::vector<RtnGrid> grids_;
};

}  // namespace

MatrixRM gptq_quantize(const MatrixRM& w, const PreparedHessian& hp, int bits, int group_size,
                       int block_size) {
  MatrixRM wq = w;
  for (long j = 0; j < wq.cols(); ++j)
    if (hp.dead[j]) wq.col(j).setZero();
  int bs = block_size;
  if (group_size > 0) bs = group_size <= block_size ? (block_size / group_size) * group_size : group_size;
  std::unique_ptr<ColumnQuantizer> qz;
  if (bits == 1)
    qz = std::make_unique<SignRowQuantizer>(wq);
  else
    qz = std::make_unique<GridQuantizer>(wq, bits, group_size);
  gptq_sweep(wq, hp.u, bs, *qz);
  return wq;
}

}  // namespace bwla
