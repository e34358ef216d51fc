// A quantized linear simulated in fp32 (quantize-dequantize):
//   y = Ŵ'·Q_a(R·x) + A·(B·x) + b
// R: optional orthogonal input transform (Hadamard / OKT Kronecker), Q_a:
// per-token asymmetric activation quantizer (abits, clip ratio; >= 16 = off),
// Ŵ': dequantized weights in the transformed basis, A·B: optional low-rank
// branch on the untransformed, unquantized input (PSP).
#pragma once
#include <memory>

#include "model/linear.h"
#include "quant/matrix.h"
#include "quant/rc_factors.h"
#include "quant/transform.h"

namespace bwla {

struct FakeQuantParts {
  std::shared_ptr<const InputTransform> transform;  // may be null
  int abits = 16;
  float act_clip = 1.0f;
  MatrixRM w_hat;  // [out, in] in the transformed basis
  MatrixRM lr_a;   // [out, r] (empty if no branch)
  MatrixRM lr_b;   // [r, in]
  std::vector<float> bias;
  double storage_bits = 0;  // honest count for weights + side tensors
  // arb-rc: the factors w_hat was built from (what `bwla pack` stores); else null.
  std::shared_ptr<const RcFactors> rc;
};

class FakeQuantLinear : public Linear {
 public:
  explicit FakeQuantLinear(FakeQuantParts p);
  int in_features() const override { return (int)p_.w_hat.cols(); }
  int out_features() const override { return (int)p_.w_hat.rows(); }
  void forward(const float* x, int n, float* y) const override;
  size_t param_bytes() const override;
  std::string describe() const override;
  const FakeQuantParts& parts() const { return p_; }

 private:
  FakeQuantParts p_;
};

}  // namespace bwla
