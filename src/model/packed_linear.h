// A linear layer of a packed bwla model (docs/FORMAT.md), run through the
// packed kernels without any fp32 copy of the weight matrix:
//   y = Σ_k Ŵ_k·Q_a(R·x) + A·(B·x) + b
// R: optional orthogonal input transform (OKT Kronecker factors, whose apply_rows
// runs kernels/kron.h's kron_apply,
// or a seeded randomized Hadamard), Q_a: per-token asymmetric activation
// quantization (quantize_acts), Ŵ_k = α_k(2M_k − 1) + μ_k: packed bit planes
// (binary_gemm_omp), A·B: optional fp32 low-rank branch (lowrank_add) on the
// untransformed input. The sign bits usually stay in the memory-mapped file.
// One token with several threads runs all of these inside one parallel region
// (forward_token_shared), so 2-thread decode has no serial step between them.
#pragma once
#include <memory>
#include <vector>

#include "kernels/binary_gemm_blocked.h"
#include "kernels/packed_binary.h"
#include "model/linear.h"
#include "quant/transform.h"

namespace bwla {

struct PackedParts {
  std::vector<PackedBinary> planes;  // each [out, in]; plane 0 carries the row base
  // Per plane (empty: whole-row α, μ held in the PackedBinary): column-block scales.
  std::vector<BlockScales> block_scales;
  std::shared_ptr<const InputTransform> transform;  // may be null
  int abits = 8;
  float act_clip = 1.0f;
  int rank = 0;
  // [out, rank], [rank, in] fp32 factors, or the same as fp16 bits (F16 file; used
  // instead). PackedLinear keeps A only transposed (lr_a / lr_a16 are emptied).
  std::vector<float> lr_a, lr_b;
  std::vector<uint16_t> lr_a16, lr_b16;
  std::vector<float> bias;
  size_t file_bytes = 0;  // bytes of this linear's tensors in the packed file
  std::shared_ptr<const void> keep_alive;  // owner of memory-mapped plane bits
};

class PackedLinear : public Linear {
 public:
  explicit PackedLinear(PackedParts p);
  int in_features() const override { return p_.planes[0].cols; }
  int out_features() const override { return p_.planes[0].rows; }
  void forward(const float* x, int n, float* y) const override;
  size_t param_bytes() const override;
  std::string describe() const override;
  const PackedParts& parts() const { return p_; }

 private:
  // One token with the threads of one parallel region: transform, quantization,
  // bit planes and low-rank branch without a fork/join or serial step between them.
  void forward_token_shared(const float* x, float* y) const;

  PackedParts p_;
  std::vector<float> lr_at_;                      // lr_a transposed, [rank, out]
  std::vector<uint16_t> lr_at16_;                 // lr_a16 transposed
};

}  // namespace bwla
