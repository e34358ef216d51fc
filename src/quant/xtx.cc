#include "quant/xtx.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/blas_par.h"
#include "core/error.h"

namespace bwla {

XtxAccumulator::XtxAccumulator(int dim) : dim_(dim) {
  BWLA_CHECK(dim > 0, "XtxAccumulator: dim must be positive, got {}", dim);
  acc_ = MatrixD::Zero(dim, dim);
}

void XtxAccumulator::reset() {
  acc_.setZero();
  count_ = 0;
  dirty_ = false;
}

void xtx_fold(const float* x, long n_tokens, int dim, std::vector<float>& part, MatrixD& acc,
              long first_token) {
  BWLA_CHECK(n_tokens >= 0, "XtxAccumulator::add: negative token count {}", n_tokens);
  if (n_tokens == 0) return;
  BWLA_CHECK(x != nullptr, "XtxAccumulator::add: null input");
  BWLA_ASSERT(acc.rows() == dim && acc.cols() == dim, "acc {}x{} for dim {}", acc.rows(), acc.cols(), dim);
  if (part.size() < (size_t)dim * dim) part.resize((size_t)dim * dim);  // kept between calls
  const long kChunk = XtxAccumulator::kChunk;
  for (long t0 = 0; t0 < n_tokens; t0 += kChunk) {
    const long nt = std::min(kChunk, n_tokens - t0);
    Eigen::Map<const MatrixRM> chunk(x + t0 * dim, nt, dim);
    BWLA_CHECK(chunk.allFinite(), "XtxAccumulator::add: non-finite activation in tokens [{}, {}) (dim {})",
               first_token + t0, first_token + t0 + nt, dim);
    // Upper triangle of chunkᵀ·chunk with OpenBLAS SYRK (half the flops of a GEMM,
    // and its run-time-dispatched AVX2/AVX-512 kernels), cut into tiles fixed by
    // the shape (same bits at any thread count), folded into the fp64 sum.
    // Row i of the row-major upper triangle is column i of acc's (column-major)
    // lower triangle, so the fold streams both contiguously.
    par_ssyrk_upper(dim, (int)nt, x + t0 * dim, dim, part.data(), dim);
#pragma omp parallel for schedule(dynamic, 16) if (dim >= 256)
    for (int i = 0; i < dim; ++i) {
      const float* pr = part.data() + (size_t)i * dim;
      double* col = acc.col(i).data();
      for (int j = i; j < dim; ++j) col[j] += pr[j];
    }
  }
}

void xtx_mirror_lower(MatrixD& acc) {
  for (int j = 0; j < acc.cols(); ++j)
    for (int i = 0; i < j; ++i) acc(i, j) = acc(j, i);
}

void XtxAccumulator::add(const float* x, long n_tokens) {
  xtx_fold(x, n_tokens, dim_, part_, acc_, count_);
  count_ += n_tokens;
  if (n_tokens > 0) dirty_ = true;
}

const MatrixD& XtxAccumulator::xtx() {
  if (dirty_) {
    // Only the lower triangle is accumulated; mirror it (exactly symmetric).
    xtx_mirror_lower(acc_);
    dirty_ = false;
  }
  return acc_;
}

}  // namespace bwla
