// Orthogonal input transforms R applied online to activations (x -> R·x) and
// offline to weights (W -> W·Rᵀ, i.e. every row w -> R·w), so W·x is unchanged.
#pragma once
#include <memory>
#include <string>

#include "quant/matrix.h"

namespace bwla {

class InputTransform {
 public:
  virtual ~InputTransform() = default;
  virtual int dim() const = 0;
  // Applies R to each of `rows` contiguous vectors of length dim(), in place.
  virtual void apply_rows(float* x, long rows) const = 0;
  // Applies Rᵀ (the inverse) in place.
  virtual void apply_rows_inverse(float* x, long rows) const = 0;
  // Applies R to one vector x in place from inside a parallel region: every
  // thread of the team (tid of nth) must call it, after x is complete and
  // visible to all; `scratch` holds dim() floats shared by the team. Returns
  // after a barrier. Default: thread 0 runs apply_rows(x, 1).
  virtual void apply_one_shared(float* x, float* scratch, int tid, int nth) const;
  // Storage cost of the transform's parameters in bits (as saved on disk).
  virtual double storage_bits() const = 0;
  virtual std::string kind() const = 0;
  // Explicit dim()×dim() matrix (for tests and small layers).
  MatrixRM explicit_matrix() const;
  // W [out, dim] -> W·Rᵀ
  void apply_to_weight(MatrixRM& w) const { apply_rows(w.data(), w.rows()); }
};

// R = R1 ⊗ R2 acting on v reshaped row-major to V (n1×n2): V -> R1ᵀ·V·R2.
// (This is the OKT convention of the paper: the same map for weight rows and
// activation tokens; it equals multiplying v by the explicit (R1 ⊗ R2)ᵀ.)
class KroneckerTransform : public InputTransform {
 public:
  KroneckerTransform(MatrixRM r1, MatrixRM r2);
  int dim() const override { return (int)(r1_.rows() * r2_.rows()); }
  void apply_rows(float* x, long rows) const override;
  void apply_rows_inverse(float* x, long rows) const override;
  // Stage 1 (V·R2) and stage 2 (R1ᵀ·…) split by rows of V over the team.
  void apply_one_shared(float* x, float* scratch, int tid, int nth) const override;
  double storage_bits() const override {
    return 32.0 * (double)(r1_.size() + r2_.size());
  }
  std::string kind() const override { return "kronecker"; }
  const MatrixRM& r1() const { return r1_; }
  const MatrixRM& r2() const { return r2_; }

 private:
  MatrixRM r1_, r2_;
  MatrixRM r1t_, r2t_;  // transposes, for apply_rows_inverse
};

}  // namespace bwla
