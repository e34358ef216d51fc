// A 4-bit linear: weights in groups of 32 columns with an fp16 scale each,
// activations quantized per token to int8 in the same groups
// (kernels/q4_gemm.h). The packed model's output head (and tied embedding)
// when packed with --head-dtype q4 (docs/FORMAT.md).
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/q4_gemm.h"
#include "model/linear.h"

namespace bwla {

class Q4Linear : public Linear {
 public:
  // View of the nibbles and fp16 group scales (q4_gemm.h layout), both owned
  // by keep_alive (e.g. a memory-mapped store).
  Q4Linear(int out, int in, const uint8_t* w, const uint16_t* scale,
           std::shared_ptr<const void> keep_alive);
  int in_features() const override { return m_.cols; }
  int out_features() const override { return m_.rows; }
  void forward(const float* x, int n, float* y) const override;
  size_t param_bytes() const override {
    return (size_t)m_.rows * (q4_row_bytes(m_.cols) + 2 * (size_t)q4_groups(m_.cols));
  }
  std::string describe() const override { return "int4 (fp16 scale per 32 columns, int8 activations)"; }
  const Q4Matrix& matrix() const { return m_; }

 private:
  std::shared_ptr<const void> keep_;
  Q4Matrix m_;
};

}  // namespace bwla
