#include "quant/xtx.h"

#include <algorithm>
#include <cmath>

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
  Eigen::MatrixXf part(dim_, dim_);
  for (long t0 = 0; t0 < n_tokens; t0 += kChunk) {
    const long nt = std::min(kChunk, n_tokens - t0);
    Eigen::Map<const MatrixRM> chunk(x + t0 * dim_, nt, dim_);
    BWLA_CHECK(chunk.allFinite(), "XtxAccumulator::add: non-finite activation in tokens [{}, {}) (dim {})",
               count_ + t0, count_ + t0 + nt, dim_);
    part.noalias() = chunk.transpose() * chunk;  // parallel GEMM
    acc_ += part.cast<double>();
  }
  count_ += n_tokens;
  dirty_ = true;
}

const MatrixD& XtxAccumulator::xtx() {
  if (dirty_) {
    // GEMM output is symmetric up to rounding; make it exactly symmetric.
    acc_ = 0.5 * (acc_ + acc_.transpose()).eval();
    dirty_ = false;
  }
  return acc_;
}

}  // namespace bwla
