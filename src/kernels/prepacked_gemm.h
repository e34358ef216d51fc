// fp32 GEMM against weights re-laid-out once, at load, in the blocked format of
// oneDNN's matmul (brgemm kernels): y[n, out] = x[n, in] · Wᵀ for a row-major
// W [out, in]. OpenBLAS packs W anew on every sgemm call, which for a prefill
// of ~128 tokens is a large share of the work; with the weights pre-packed the
// same products ran 1.3–1.5× faster on AMD EPYC (Zen 4) at 1 and 2 threads
// (docs/RESULTS.md). The plain copy of W can be dropped after construction.
// Exact fp32 products, summed in a different order than OpenBLAS: results agree
// with the plain product to float rounding, not bit for bit.
//
// A single token (decode) does not go through a 1-row matmul: in the layout
// oneDNN picks for f32 (64-output panels of [K] × 64 floats, one after another)
// each panel is one contiguous stream, read by panel_gemv (1.3× faster at one
// thread than OpenBLAS sgemv on the plain weights, EPYC, TinyLlama shape).
//
// Built when oneDNN (Debian libdnnl-dev) is found; available() says whether this
// build has it. Threads: oneDNN's OpenMP runtime, i.e. omp_get_max_threads().
#pragma once
#include <memory>

namespace bwla {

class PrepackedGemm {
 public:
  // Whether this build has the oneDNN backend.
  static bool available();
  // available(), unless the environment sets BWLA_GEMM=openblas (for A/B timing).
  static bool enabled();
  // Copies and re-lays-out w [out, in] (row-major, row stride in).
  PrepackedGemm(const float* w, int out, int in);
  ~PrepackedGemm();
  PrepackedGemm(const PrepackedGemm&) = delete;
  PrepackedGemm& operator=(const PrepackedGemm&) = delete;

  // y [n, out] (row-major, overwritten) = x [n, in] · Wᵀ. Any n ≥ 1; the primitive
  // for each distinct n is created on first use and cached (thread-safe).
  void forward(const float* x, int n, float* y) const;
  int out_features() const { return out_; }
  int in_features() const { return in_; }
  // Bytes held for the packed weights.
  size_t bytes() const;
  // Whether single tokens take the panel GEMV (else a 1-row oneDNN matmul).
  bool panel_gemv() const;

 private:
  struct Impl;
  int out_, in_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bwla
