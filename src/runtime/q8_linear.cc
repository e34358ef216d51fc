#include "runtime/q8_linear.h"

#include "core/error.h"

namespace bwla {

Q8Linear::Q8Linear(int out, int in, const int8_t* w, std::vector<float> scale,
                   std::shared_ptr<const void> keep_alive)
    : scale_(std::move(scale)), keep_(std::move(keep_alive)) {
  BWLA_ASSERT(out > 0 && in > 0 && w && scale_.size() == (size_t)out, "q8 linear {}x{} scales {}",
              out, in, scale_.size());
  m_ = Q8Matrix{out, in, (size_t)in, w, scale_.data()};
}

void Q8Linear::forward(const float* x, int n, float* y) const { q8_gemm(m_, x, n, y); }

}  // namespace bwla
