// Low-rank correction y += (x·Bᵀ)·Aᵀ (the PSP branch of a BWLA layer), fp32.
// A is passed transposed (At = Aᵀ, [rank, out]) so that each token's update is
// one linear combination of contiguous rows.
#pragma once

namespace bwla {

// x: [tokens, in], B: [rank, in], At: [rank, out], y: [tokens, out] (all row-major,
// any alignment). y is accumulated into. Dispatches on active_isa(); OpenMP over
// tokens when there are several.
void lowrank_add(const float* x, int tokens, int in, const float* B, const float* At, int rank,
                 int out, float* y);

namespace detail {
float dot_scalar(const float* a, const float* b, int n);
float dot_avx2(const float* a, const float* b, int n);
float dot_avx512(const float* a, const float* b, int n);
}  // namespace detail

}  // namespace bwla
