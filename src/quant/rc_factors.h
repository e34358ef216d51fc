// The factors of an ARB-RC binarized weight (quant/billm.h, BinRefine::ArbRC),
// kept beside the dequantized Ŵ so that `bwla pack` can store the layer in its
// own form (docs/FORMAT.md) instead of refusing it:
//   ŵ_ij = a_{k,i,b}·c_{k,j}·s_ij + μ_{g,i,b}       b = j / block_cols
// with g the entry's group: 0 salient (first plane k = 0, plus a second plane
// k = 1 with its own sign on the residual), 1 concentrated (k = 2), 2 sparse
// (k = 3). The salient planes' two offsets are one sum μ_0.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/matrix.h"

namespace bwla {

struct RcFactors {
  static constexpr int kPlanes = 4, kGroups = 3;
  // Bits of code[i·cols + j]: 0–1 group, 2 sign of the first plane (set = +1),
  // 3 sign of the salient second plane (set = +1; salient entries only).
  static constexpr uint8_t kGroupMask = 3, kSign = 4, kSign2 = 8;
  int rows = 0, cols = 0, block_cols = 0, blocks = 0;
  std::vector<uint8_t> code;  // [rows][cols]
  std::vector<float> a;       // [kPlanes][rows][blocks]
  std::vector<float> mu;      // [kGroups][rows][blocks]
  std::vector<float> c;       // [kPlanes][cols]

  RcFactors() = default;
  RcFactors(int rows_, int cols_, int block_cols_);
  float& A(int k, int i, int b) { return a[((size_t)k * rows + i) * blocks + b]; }
  float& M(int g, int i, int b) { return mu[((size_t)g * rows + i) * blocks + b]; }
  float& C(int k, int j) { return c[(size_t)k * cols + j]; }
  float A(int k, int i, int b) const { return a[((size_t)k * rows + i) * blocks + b]; }
  float M(int g, int i, int b) const { return mu[((size_t)g * rows + i) * blocks + b]; }
  float C(int k, int j) const { return c[(size_t)k * cols + j]; }
  // ŵ_ij from the factors (fp32, the order of billm.cc's fit).
  float weight(int i, int j) const;
};

// Ŵ from the factors.
MatrixRM compose_rc(const RcFactors& f);

// The largest |compose_rc(f) − w_hat| relative to max |w_hat| (0 for a zero
// matrix): how exactly the factors describe the stored weights.
double rc_mismatch(const RcFactors& f, const MatrixRM& w_hat);

}  // namespace bwla
