// Low-rank correction y += (x·Bᵀ)·Aᵀ (the PSP branch of a BWLA layer), fp32.
#pragma once

namespace bwla {

// x: [tokens, in], B: [rank, in], A: [out, rank], y: [tokens, out] (all row-major,
// any alignment). y is accumulated into. Dispatches on active_isa().
void lowrank_add(const float* x, int tokens, int in, const float* B, const float* A, int rank,
                 int out, float* y);

namespace detail {
float dot_scalar(const float* a, const float* b, int n);
float dot_avx2(const float* a, const float* b, int n);
float dot_avx512(const float* a, const float* b, int n);
}  // namespace detail

}  // namespace bwla
