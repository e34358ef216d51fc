// Streaming accumulation of the calibration Gram matrix XᵀX of a linear
// layer's inputs (X: [N tokens, in]). Tokens are never stored: each add()
// folds its chunk in. Chunks of up to kChunk tokens are multiplied in fp32
// (OpenBLAS SYRK in tiles over OpenMP threads) and summed into a double
// accumulator, so the rounding error is that of a kChunk-term fp32 dot product
// per chunk, never that of an N-term one.
#pragma once
#include <vector>

#include "quant/matrix.h"

namespace bwla {

class XtxAccumulator {
 public:
  static constexpr long kChunk = 1024;
  explicit XtxAccumulator(int dim);
  // x: n_tokens rows of dim() floats each (row-major). Non-finite input -> bwla::Error.
  void add(const float* x, long n_tokens);
  // Full symmetric XᵀX (double), [dim, dim].
  const MatrixD& xtx();
  long count() const { return count_; }
  int dim() const { return dim_; }
  void reset();

 private:
  int dim_;
  long count_ = 0;
  std::vector<float> part_;  // one chunk's fp32 product
  MatrixD acc_;     // full product, symmetrised lazily by xtx()
  bool dirty_ = false;
};

}  // namespace bwla
