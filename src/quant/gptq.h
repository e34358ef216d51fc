// GPTQ column sweep (arXiv 2210.17323) with a pluggable column quantizer.
//
// Given U (upper Cholesky factor of H⁻¹), columns are quantized left to right
// in blocks of block_size; after column j is quantized to q, the error
// e = (w_j − q)/U_jj is fed back to the not-yet-quantized columns of the
// block, W[:, j+1:] −= e·U[j, j+1:], and at the end of the block to all later
// columns at once (lazy batch update, one GEMM per block).
#pragma once
#include <memory>

#include "quant/hessian.h"
#include "quant/matrix.h"

namespace bwla {

using MatrixCM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

class ColumnQuantizer {
 public:
  virtual ~ColumnQuantizer() = default;
  // Start of block [c0, c0 + wblk.cols()): wblk holds the current
  // (error-compensated) values, ublk the matching diagonal block of U.
  virtual void begin_block(int c0, const MatrixCM& wblk, const Eigen::Ref<const MatrixRM>& ublk) {}
  // Quantize column j = c0 + jj of the block (current values in wblk.col(jj))
  // into q[0..rows). Later columns of wblk are still unquantized.
  virtual void quantize_column(int j, int jj, const MatrixCM& wblk, float* q) = 0;
};

// In place: w (W on entry, Ŵ on return). block_size >= 1.
void gptq_sweep(MatrixRM& w, const MatrixRM& u, int block_size, ColumnQuantizer& qz);

// Asymmetric min-max grid for b-bit RTN: ŵ = min + scale·clamp(round((w−min)/scale), 0, 2^b−1).
struct RtnGrid {
  float lo = 0, scale = 0, maxq = 1;
  static RtnGrid fit(const float* v, long n, long stride, int bits);
  float operator()(float x) const {
    if (!(scale > 0)) return lo;
    float q = std::nearbyint((x - lo) / scale);
    q = q < 0 ? 0 : (q > maxq ? maxq : q);
    return lo + q * scale;
  }
};

// GPTQ at `bits` (1: sign·α+μ per row fitted on the whole row before the
// sweep; 2..8: RTN grid per row, fitted before the sweep, or per group of
// group_size columns, fitted on the current values when the sweep enters the
// group). The sweep block is aligned to groups (a multiple of group_size, or
// group_size itself when larger). Returns Ŵ.
MatrixRM gptq_quantize(const MatrixRM& w, const PreparedHessian& hp, int bits, int group_size,
                       int block_size);

}  // namespace bwla
