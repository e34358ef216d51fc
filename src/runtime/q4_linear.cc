#include "runtime/q4_linear.h"

#include "core/error.h"

namespace bwla {

Q4Linear::Q4Linear(int out, int in, const uint8_t* w, const uint16_t* scale,
                   std::shared_ptr<const void> keep_alive)
    : keep_(std::move(keep_alive)), m_{out, in, w, scale} {
  BWLA_ASSERT(out > 0 && in > 0 && w && scale, "q4 linear {}x{}", out, in);
}

void Q4Linear::forward(const float* x, int n, float* y) const { q4_gemm(m_, x, n, y); }

}  // namespace bwla
