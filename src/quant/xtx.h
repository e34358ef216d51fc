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

// The fold behind XtxAccumulator::add, for accumulators kept elsewhere
// (pipeline/distributed.h): acc's lower triangle (column-major) += the fp32
// products of x's rows in chunks of kChunk; part is the fp32 scratch;
// first_token only names rows in the non-finite error.
void xtx_fold(const float* x, long n_tokens, int dim, std::vector<float>& part, MatrixD& acc,
              long first_token = 0);
// Copies the lower triangle onto the upper one.
void xtx_mirror_lower(MatrixD& acc);

}  // namespace bwla
