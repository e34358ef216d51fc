// fp32 GEMV on plain row-major weights: y[r] = Σ_k W[r·ldw + k]·x[k] for r < rows.
// The single-token path of DenseLinears that are not prepacked (the tied
// lm_head, which stays a view of the embedding table). OpenBLAS sgemv streamed
// the 113 MB SmolLM2 head at ~12 GB/s on EPYC (Zen 4) against ~28 GB/s for the
// panel GEMV; this reads one row at a time as a single sequential stream
// (~29 GB/s there; see row_gemv.cc for the layouts that were slower).
// Scalar reference and AVX2 / AVX-512 versions (single-threaded, sums in an
// ISA-dependent order); row_gemv dispatches on active_isa() and splits rows
// over OpenMP threads in 16-row units (inline when already in a parallel region).
#pragma once

#include <cstddef>

namespace bwla {

void row_gemv(int rows, int k, const float* w, size_t ldw, const float* x, float* y);

namespace detail {
void row_gemv_scalar(int rows, int k, const float* w, size_t ldw, const float* x, float* y);
void row_gemv_avx2(int rows, int k, const float* w, size_t ldw, const float* x, float* y);
void row_gemv_avx512(int rows, int k, const float* w, size_t ldw, const float* x, float* y);
}  // namespace detail

}  // namespace bwla
