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
// (forward_token_group), so 2-thread decode has no serial step between them;
// forward_siblings puts q/k/v (or gate/up) in one region together.
#pragma once
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/binary_gemm_blocked.h"
#include "kernels/input_transform.h"
#include "kernels/lowrank.h"
#include "kernels/packed_binary.h"
#include "kernels/rc_gemm.h"
#include "model/linear.h"

namespace bwla {

struct PackedParts {
  std::vector<PackedBinary> planes;  // each [out, in]; plane 0 carries the row base
  // ARB-RC linears (row and column scales) store this instead of planes.
  std::shared_ptr<const RcMatrix> rc;
  // Per plane (empty: whole-row α, μ held in the PackedBinary): column-block scales.
  std::vector<BlockScales> block_scales;
  std::shared_ptr<const InputTransform> transform;  // may be null
  int abits = 8;
  float act_clip = 1.0f;
  int rank = 0;
  // The PSP branch: A [out, rank] and B [rank, in] as raw elements of
  // lr_dtype (fp32, fp16 bits, or int8 with lr_s8[k] = scale of A's column k
  // × scale of B's row k, format 3); set_lowrank fills them. PackedLinear
  // keeps A only transposed (lr_a is emptied).
  LowRankDtype lr_dtype = LowRankDtype::F32;
  std::vector<uint8_t> lr_a, lr_b;
  std::vector<float> lr_s8;
  void set_lowrank(LowRankDtype dtype, const void* a, size_t a_bytes, const void* b,
                   size_t b_bytes) {
    lr_dtype = dtype;
    lr_a.assign(static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(a) + a_bytes);
    lr_b.assign(static_cast<const uint8_t*>(b), static_cast<const uint8_t*>(b) + b_bytes);
  }
  template <class T>
  void set_lowrank(LowRankDtype dtype, const std::vector<T>& a, const std::vector<T>& b) {
    set_lowrank(dtype, a.data(), a.size() * sizeof(T), b.data(), b.size() * sizeof(T));
  }
  std::vector<float> bias;
  size_t file_bytes = 0;  // bytes of this linear's tensors in the packed file
  std::shared_ptr<const void> keep_alive;  // owner of memory-mapped plane bits
};

class PackedLinear : public Linear {
 public:
  explicit PackedLinear(PackedParts p);
  int in_features() const override { return p_.rc ? p_.rc->cols : p_.planes[0].cols; }
  int out_features() const override { return p_.rc ? p_.rc->rows : p_.planes[0].rows; }
  // Whether forward_token_group can take this linear (bit planes with whole-row scales).
  bool groupable() const { return !p_.rc && p_.block_scales.empty(); }
  void forward(const float* x, int n, float* y) const override;
  // Packed siblings that are all groupable go through forward_token_group.
  void forward_siblings(const Linear* const* lins, float* const* ys, int count, const float* x,
                        int n) const override;
  size_t param_bytes() const override;
  std::string describe() const override;
  const PackedParts& parts() const { return p_; }

  // ys[i] = lins[i]·x for n ≤ kMaxTokens tokens x (row-major [n, in]; ys[i]
  // [n, out]), count ≤ kMaxGroup linears of the same input width, none with
  // column-block scales: low-rank projections, transform stages, activation
  // quantization and bit-plane rows of all of them split over the threads of
  // one parallel region (one fork, a barrier per step). Each sign plane is read
  // once for all n tokens (the decode steps of a server's slots), and every
  // token's result is bit-identical to running it alone (per-token transforms,
  // PSP and quantization; exact integer sums with a shared epilogue).
  static constexpr int kMaxGroup = 4;
  static constexpr int kMaxTokens = 8;
  static void forward_token_group(const PackedLinear* const* lins, float* const* ys, int count,
                                  const float* x, int n = 1);

 private:
  friend class TokenGroup;  // forward_token_group's steps (packed_linear.cc)
  // y = Σ_k plane_k · x̂ (the bit-plane layouts), overwriting y.
  void forward_planes(const QuantActs& qa, float* y) const;
  // The PSP branch in the stored factor dtype (int8, fp16 or fp32):
  // u[k0..k1) = B·x, y[r0..r1) += A·u, and both for n tokens.
  void psp_project(const float* x, int k0, int k1, float* u) const;
  void psp_expand(const float* u, int r0, int r1, float* y) const;
  void psp_add(const float* x, int n, float* y) const;

  PackedParts p_;
  const LowRankTraits* lr_;    // the branch's storage type
  std::vector<uint8_t> lr_at_;  // lr_a transposed, [rank, out] elements of lr_dtype
};

}  // namespace bwla
