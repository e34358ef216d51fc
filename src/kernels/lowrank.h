// Low-rank correction y += (x·Bᵀ)·Aᵀ (the PSP branch of a BWLA layer), fp32.
// A is passed transposed (At = Aᵀ, [rank, out]) so that each token's update is
// one linear combination of contiguous rows.
#pragma once
#include <cstdint>

namespace bwla {

// x: [tokens, in], B: [rank, in], At: [rank, out], y: [tokens, out] (all row-major,
// any alignment). y is accumulated into. Dispatches on active_isa(); OpenMP over
// tokens when there are several.
void lowrank_add(const float* x, int tokens, int in, const float* B, const float* At, int rank,
                 int out, float* y);

// Same with B and At stored as IEEE fp16 bits (converted in registers): the
// packed model keeps an F16 PSP branch at half the bytes per decode step.
void lowrank_add_f16(const float* x, int tokens, int in, const uint16_t* B, const uint16_t* At,
                     int rank, int out, float* y);

namespace detail {
float dot_scalar(const float* a, const float* b, int n);
float dot_avx2(const float* a, const float* b, int n);
float dot_avx512(const float* a, const float* b, int n);
float dot_f16_scalar(const uint16_t* a, const float* b, int n);
float dot_f16_avx2(const uint16_t* a, const float* b, int n);
float dot_f16_avx512(const uint16_t* a, const float* b, int n);
// y[0..n) += Σ_k u[k]·rows[k·n + 0..n) for fp16 rows.
void axpy_rows_f16_scalar(const float* u, int terms, const uint16_t* rows, int n, float* y);
void axpy_rows_f16_avx2(const float* u, int terms, const uint16_t* rows, int n, float* y);
void axpy_rows_f16_avx512(const float* u, int terms, const uint16_t* rows, int n, float* y);
}  // namespace detail

}  // namespace bwla
