#include "model/linear.h"

#include <omp.h>

#include <algorithm>

#include "core/blas_par.h"
#include "core/error.h"
#include "core/half.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "kernels/row_gemv.h"

namespace bwla {

const char* linear_name(int id) {
  static const char* names[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                "gate_proj", "up_proj", "down_proj"};
  BWLA_ASSERT(id >= 0 && id < kNumLinears, "linear id {}", id);
  return names[id];
}

int linear_input_slot(int id) {
  static const int slots[] = {0, 0, 0, 1, 2, 2, 3};
  return slots[id];
}

DenseLinear::DenseLinear(int out, int in, std::vector<float> w, std::vector<float> bias)
    : out_(out), in_(in), owned_(std::move(w)), w_(owned_.data()), bias_(std::move(bias)) {
  BWLA_ASSERT(owned_.size() == (size_t)out * in, "weight size {} vs {}x{}", owned_.size(), out, in);
  BWLA_ASSERT(bias_.empty() || bias_.size() == (size_t)out, "bias size {}", bias_.size());
}

DenseLinear::DenseLinear(int out, int in, const float* w_view, std::vector<float> bias)
    : out_(out), in_(in), w_(w_view), bias_(std::move(bias)) {}

bool DenseLinear::prepack() {
  if (packed_) return true;
  if (owned_.empty() || !PrepackedGemm::enabled()) return false;
  packed_ = std::make_unique<PrepackedGemm>(owned_.data(), out_, in_);
  owned_ = std::vector<float>();
  w_ = nullptr;
  return true;
}

void DenseLinear::forward(const float* x, int n, float* y) const {
  if (packed_) {
    packed_->forward(x, n, y);
  } else if (n == 1) {
    // Own row GEMV: OpenBLAS sgemv read the tied SmolLM2 head at ~12 GB/s on
    // EPYC (Zen 4), this at ~29 GB/s: SmolLM2 tg128 at 1 thread 37-38 -> 45 t/s.
    row_gemv(out_, in_, w_, in_, x, y);
  } else {
    // Each OpenMP thread multiplies its own 16-aligned slice of output columns
    // with single-threaded sgemm: measured 52–55 vs 32–42 tokens/s for
    // TinyLlama-shape pp128 at 2 threads against OpenBLAS's own threading.
    par_sgemm_nt(n, out_, in_, 1.0f, x, in_, w_, in_, 0.0f, y, out_);
  }
  if (!bias_.empty())
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < out_; ++o) y[(size_t)t * out_ + o] += bias_[o];
}

LazyDenseLinear::LazyDenseLinear(int out, int in, const TensorView* view, std::vector<float> bias)
    : out_(out), in_(in), view_(view), bias_(std::move(bias)) {
  BWLA_ASSERT(view_->dtype == DType::BF16 || view_->dtype == DType::F16, "lazy linear dtype {}",
              dtype_name(view_->dtype));
}

size_t LazyDenseLinear::param_bytes() const { return view_->nbytes + bias_.size() * 4; }

void LazyDenseLinear::forward(const float* x, int n, float* y) const {
  constexpr int kBlock = 256;  // output rows converted at a time
  const bool bf = view_->dtype == DType::BF16;
  const uint16_t* src = reinterpret_cast<const uint16_t*>(view_->data);
  std::vector<float> w((size_t)kBlock * in_);
  std::vector<float> yb((size_t)n * kBlock);
  for (int r0 = 0; r0 < out_; r0 += kBlock) {
    const int rb = std::min(kBlock, out_ - r0);
    const size_t cnt = (size_t)rb * in_;
#pragma omp parallel for schedule(static) if (cnt >= 65536)
    for (size_t i = 0; i < cnt; ++i) {
      uint16_t h = src[(size_t)r0 * in_ + i];
      w[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
    }
    par_sgemm_nt(n, rb, in_, 1.0f, x, in_, w.data(), in_, 0.0f, yb.data(), rb);
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < rb; ++o)
        y[(size_t)t * out_ + r0 + o] = yb[(size_t)t * rb + o] + (bias_.empty() ? 0.f : bias_[r0 + o]);
  }
}

void Linear::forward_siblings(const Linear* const* lins, float* const* ys, int count,
                              const float* x, int n) const {
  for (int j = 0; j < count; ++j) lins[j]->forward(x, n, ys[j]);
}

void forward_same_input(const Linear* const* lins, float* const* ys, int count, const float* x,
                        int n) {
  if (count > 0) lins[0]->forward_siblings(lins, ys, count, x, n);
}

}  // namespace bwla
