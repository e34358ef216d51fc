// A decoder linear layer: y[n, out] = x[n, in] · Wᵀ (+ b). Implementations:
// DenseLinear (fp32 via OpenBLAS), FakeQuantLinear (quantize-dequantize
// simulation) and packed 1-bit linears.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/prepacked_gemm.h"

namespace bwla {

enum LinearId { kQ = 0, kK, kV, kO, kGate, kUp, kDown, kNumLinears };
const char* linear_name(int id);  // "q_proj", ... (HF names)
// Index of the distinct input a linear reads: 0 attn input (q,k,v), 1 o input,
// 2 mlp input (gate, up), 3 down input.
int linear_input_slot(int id);
constexpr int kNumInputSlots = 4;

class Linear {
 public:
  virtual ~Linear() = default;
  virtual int in_features() const = 0;
  virtual int out_features() const = 0;
  // x: [n, in] row-major, y: [n, out]; y is overwritten.
  virtual void forward(const float* x, int n, float* y) const = 0;
  // ys[i] = lins[i]·x for `count` linears reading the same x, of which this
  // is lins[0]: a storage that computes siblings together (the packed
  // layer's token group) overrides it; the default runs one forward each.
  virtual void forward_siblings(const Linear* const* lins, float* const* ys, int count,
                                const float* x, int n) const;
  // Bytes of parameters this layer holds (for memory reports).
  virtual size_t param_bytes() const = 0;
  virtual std::string describe() const = 0;
};

class DenseLinear : public Linear {
 public:
  // Takes ownership of w [out, in] and optional bias [out].
  DenseLinear(int out, int in, std::vector<float> w, std::vector<float> bias = {});
  // Non-owning view of fp32 weights kept alive by the caller (e.g. an mmap).
  DenseLinear(int out, int in, const float* w_view, std::vector<float> bias = {});
  int in_features() const override { return in_; }
  int out_features() const override { return out_; }
  void forward(const float* x, int n, float* y) const override;
  size_t param_bytes() const override { return (size_t)in_ * out_ * 4 + bias_.size() * 4; }
  std::string describe() const override { return packed_ ? "fp32 (oneDNN pre-packed)" : "fp32"; }
  // The row-major fp32 weights; not available once prepack() has dropped them.
  const float* weight() const {
    BWLA_ASSERT(w_ != nullptr, "DenseLinear {}x{}: plain weights were dropped by prepack()", out_, in_);
    return w_;
  }
  const std::vector<float>& bias() const { return bias_; }
  // Re-lays-out owned weights for PrepackedGemm (oneDNN) and frees the plain
  // copy; forward() then runs on it. Returns false (and changes nothing) when
  // the backend is not enabled or the weights are a view owned elsewhere.
  bool prepack();
  bool prepacked() const { return packed_ != nullptr; }

 private:
  int out_, in_;
  std::unique_ptr<PrepackedGemm> packed_;
  std::vector<float> owned_;
  const float* w_;
  std::vector<float> bias_;
};

// Weights left in the checkpoint's 16-bit dtype (a memory-mapped tensor) and
// converted to fp32 in row blocks on every forward call: lets a model whose
// fp32 copy would not fit in RAM run (at some speed cost).
class LazyDenseLinear : public Linear {
 public:
  // view must stay valid (the TensorStore keeps the mmap alive).
  LazyDenseLinear(int out, int in, const struct TensorView* view, std::vector<float> bias = {});
  int in_features() const override { return in_; }
  int out_features() const override { return out_; }
  void forward(const float* x, int n, float* y) const override;
  size_t param_bytes() const override;
  std::string describe() const override { return "lazy-16bit"; }

 private:
  int out_, in_;
  const struct TensorView* view_;
  std::vector<float> bias_;
};

// ys[i] = lins[i]·x for linears that read the same input (q/k/v, gate/up): one
// token (or up to kMaxTokens, a batch of decode steps) through packed linears
// with several threads goes to PackedLinear::forward_token_group, anything else
// to one forward each (lins[0]->forward_siblings decides).
void forward_same_input(const Linear* const* lins, float* const* ys, int count, const float* x,
                        int n);

}  // namespace bwla
