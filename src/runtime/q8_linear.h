// An 8-bit linear: int8 weights with one fp32 scale per output row, fp32
// activations (kernels/q8_gemm.h). The packed model's output head (and tied
// embedding) when packed with --head-dtype q8 (docs/FORMAT.md).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/q8_gemm.h"
#include "model/linear.h"

namespace bwla {

class Q8Linear : public Linear {
 public:
  // View of int8 weights [out, in] owned by keep_alive (e.g. a memory-mapped store).
  Q8Linear(int out, int in, const int8_t* w, std::vector<float> scale,
           std::shared_ptr<const void> keep_alive);
  int in_features() const override { return m_.cols; }
  int out_features() const override { return m_.rows; }
  void forward(const float* x, int n, float* y) const override;
  size_t param_bytes() const override { return (size_t)m_.rows * m_.cols + scale_.size() * 4; }
  std::string describe() const override { return "int8 (per-row scale)"; }
  const Q8Matrix& matrix() const { return m_; }

 private:
  std::vector<float> scale_;
  std::shared_ptr<const void> keep_;
  Q8Matrix m_;
};

}  // namespace bwla
