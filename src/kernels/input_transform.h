// Orthogonal input transforms R applied online to activations (x -> R·x) and
// offline to weights (W -> W·Rᵀ, i.e. every row w -> R·w), so W·x is unchanged.
// These are the runtime side: plain arrays and the kernels of kron.h, no
// matrix library, so that a packed model runs without quant/ (the quantizers'
// Eigen views of them are in quant/transform.h).
#pragma once
#include <string>
#include <vector>

namespace bwla {

class InputTransform {
 public:
  virtual ~InputTransform() = default;
  virtual int dim() const = 0;
  // Applies R to each of `rows` contiguous vectors of length dim(), in place.
  virtual void apply_rows(float* x, long rows) const = 0;
  // Applies Rᵀ (the inverse) in place.
  virtual void apply_rows_inverse(float* x, long rows) const = 0;
  // R on one vector split for the threads of a parallel region: stages run in
  // order with a barrier between them; stage s has stage_work(s) units, and
  // run_stage(s, x, scratch, w0, w1) does units [w0, w1) (any split of the
  // units over threads gives R·x). `scratch` holds dim() floats shared by all.
  // Default: one stage of one unit that runs apply_rows(x, 1).
  virtual int shared_stages() const { return 1; }
  virtual int stage_work(int /*stage*/) const { return 1; }
  virtual void run_stage(int stage, float* x, float* scratch, int w0, int w1) const;
  // Storage cost of the transform's parameters in bits (as saved on disk).
  virtual double storage_bits() const = 0;
  virtual std::string kind() const = 0;
};

// R = R1 ⊗ R2 acting on v reshaped row-major to V (n1×n2): V -> R1ᵀ·V·R2.
// (This is the OKT convention of the paper: the same map for weight rows and
// activation tokens; it equals multiplying v by the explicit (R1 ⊗ R2)ᵀ.)
// Factors are row-major n×n fp32 arrays.
class KroneckerTransform : public InputTransform {
 public:
  KroneckerTransform(std::vector<float> r1, int n1, std::vector<float> r2, int n2);
  int dim() const override { return n1_ * n2_; }
  void apply_rows(float* x, long rows) const override;
  void apply_rows_inverse(float* x, long rows) const override;
  // Stage 0: scratch rows = V rows·R2; stage 1: x rows = R1ᵀ·scratch (n1 units each).
  int shared_stages() const override { return 2; }
  int stage_work(int) const override { return n1_; }
  void run_stage(int stage, float* x, float* scratch, int w0, int w1) const override;
  double storage_bits() const override { return 32.0 * (double)(r1_.size() + r2_.size()); }
  std::string kind() const override { return "kronecker"; }
  int n1() const { return n1_; }
  int n2() const { return n2_; }
  const std::vector<float>& r1() const { return r1_; }
  const std::vector<float>& r2() const { return r2_; }

 private:
  int n1_, n2_;
  std::vector<float> r1_, r2_;
  std::vector<float> r1t_, r2t_;  // transposes, for apply_rows_inverse
};

}  // namespace bwla
