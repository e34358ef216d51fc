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

void XtxAccumulator::add(const float* x, long n_tokens) {
  BWLA_CHECK(n_tokens >= 0, "XtxAccumulator::add: negative token count {}", n_tokens);
  if (n_tokens == 0) return;
  BWLA_CHECK(x != nullptr, "XtxAccumulator::add: null input");
  if (part_.size() < (size_t)dim_ * dim_) part_.resize((size_t)dim_ * dim_);  // kept between calls
  for (long t0 = 0; t0 < n_tokens; t0 += kChunk) {
    const long nt = std::min(kChunk, n_tokens - t0);
    Eigen::Map<const MatrixRM> chunk(x + t0 * dim_, nt, dim_);
    BWLA_CHECK(chunk.allFinite(), "XtxAccumulator::add: non-finite activation in tokens [{}, {}) (dim {})",
               count_ + t0, count_ + t0 + nt, dim_);
    // Upper triangle of chunkᵀ·chunk with OpenBLAS SYRK (half the flops of a GEMM,
    // and its run-time-dispatched AVX2/AVX-512 kernels), cut into tiles fixed by
    // the shape (same bits at any thread count), folded into the fp64 sum.
    // Row i of the row-major upper triangle is column i of acc_'s (column-major)
    // lower triangle, so the fold streams both contiguously.
    par_ssyrk_upper(dim_, (int)nt, x + t0 * dim_, dim_, part_.data(), dim_);
#pragma omp parallel for schedule(dynamic, 16) if (dim_ >= 256)
    for (int i = 0; i < dim_; ++i) {
      const float* pr = part_.data() + (size_t)i * dim_;
      double* col = acc_.col(i).data();
      for (int j = i; j < dim_; ++j) col[j] += pr[j];
    }
  }
  count_ += n_tokens;
  dirty_ = true;
}

const MatrixD& XtxAccumulator::xtx() {
  if (dirty_) {
    // Only the lower triangle is accumulated; mirror it (exactly symmetric).
    for (int j = 0; j < dim_; ++j)
      for (int i = 0; i < j; ++i) acc_(i, j) = acc_(j, i);
    dirty_ = false;
  }
  return acc_;
}

}  // namespace bwla
