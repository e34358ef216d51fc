#include "kernels/input_transform.h"

#include "core/error.h"
#include "kernels/kron.h"

namespace bwla {

namespace {
std::vector<float> transposed(const std::vector<float>& a, int n) {
  std::vector<float> t(a.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) t[(size_t)j * n + i] = a[(size_t)i * n + j];
  return t;
}
}  // namespace

void InputTransform::run_stage(int, float* x, float*, int w0, int w1) const {
  if (w0 < 1 && w1 >= 1) apply_rows(x, 1);
}

KroneckerTransform::KroneckerTransform(std::vector<float> r1, int n1, std::vector<float> r2, int n2)
    : n1_(n1), n2_(n2), r1_(std::move(r1)), r2_(std::move(r2)) {
  BWLA_CHECK(n1 > 0 && n2 > 0 && r1_.size() == (size_t)n1 * n1 && r2_.size() == (size_t)n2 * n2,
             "Kronecker factors must be square: {} values for {}x{} and {} for {}x{}", r1_.size(),
             n1, n1, r2_.size(), n2, n2);
  r1t_ = transposed(r1_, n1_);
  r2t_ = transposed(r2_, n2_);
}

void KroneckerTransform::apply_rows(float* x, long rows) const {
  // R1ᵀ·V·R2 per token (kernels/kron.h; in place, OpenMP over tokens).
  kron_apply(x, x, (int)rows, r1_.data(), n1_, r2_.data(), n2_);
}

void KroneckerTransform::apply_rows_inverse(float* x, long rows) const {
  // R1·V·R2ᵀ = (R1ᵀ)ᵀ·V·(R2ᵀ).
  kron_apply(x, x, (int)rows, r1t_.data(), n1_, r2t_.data(), n2_);
}

void KroneckerTransform::run_stage(int stage, float* x, float* scratch, int w0, int w1) const {
  if (stage == 0)
    kron_stage1(x, scratch, w0, w1, r2_.data(), n2_);
  else
    kron_stage2(scratch, x, w0, w1, r1_.data(), n1_, n2_);
}

}  // namespace bwla
