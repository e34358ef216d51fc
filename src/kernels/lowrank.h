// Low-rank correction y += (x·Bᵀ)·Aᵀ (the PSP branch of a BWLA layer), fp32.
// A is passed transposed (At = Aᵀ, [rank, out]) so that each token's update is
// one linear combination of contiguous rows.
#pragma once
#include <cstddef>
#include <cstdint>

namespace bwla {

// x: [tokens, in], B: [rank, in], At: [rank, out], y: [tokens, out] (all row-major,
// any alignment). y is accumulated into. Dispatches through kernels() (kernels/dispatch.h); OpenMP over
// tokens when there are several.
void lowrank_add(const float* x, int tokens, int in, const float* B, const float* At, int rank,
                 int out, float* y);

// Same with B and At stored as IEEE fp16 bits (converted in registers): the
// packed model keeps an F16 PSP branch at half the bytes per decode step.
void lowrank_add_f16(const float* x, int tokens, int in, const uint16_t* B, const uint16_t* At,
                     int rank, int out, float* y);

// Same with int8 factors and one fp32 scale per rank component (row k of B
// scaled by sb[k], column k of A by sa[k]); s[k] = sa[k]·sb[k] is applied to
// the projection: u[k] = s[k]·(B8[k]·x), y += At8ᵀ·u.
void lowrank_add_i8(const float* x, int tokens, int in, const int8_t* B, const int8_t* At,
                    const float* s, int rank, int out, float* y);

// Single-token pieces of lowrank_add for the threads of an enclosing parallel
// region that share one call (a barrier between the two):
//   project: u[k] = B[k]·x for k in [k0, k1)
//   expand:  y[r] += Σ_{k < rank} u[k]·At[k][r] for r in [r0, r1)
void lowrank_project(const float* x, int in, const float* B, int k0, int k1, float* u);
void lowrank_project_f16(const float* x, int in, const uint16_t* B, int k0, int k1, float* u);
void lowrank_project_i8(const float* x, int in, const int8_t* B, const float* s, int k0, int k1,
                        float* u);
void lowrank_expand(const float* u, int rank, const float* At, int out, int r0, int r1, float* y);
void lowrank_expand_f16(const float* u, int rank, const uint16_t* At, int out, int r0, int r1,
                        float* y);
void lowrank_expand_i8(const float* u, int rank, const int8_t* At, int out, int r0, int r1,
                       float* y);

// Storage type of a stored low-rank branch's factors, with one traits entry
// each (as ggml's type traits): the functions above behind one signature, B
// and At as raw elements of that type, s the int8 scales (null otherwise).
enum class LowRankDtype : uint8_t { F32 = 0, F16 = 1, I8 = 2 };
struct LowRankTraits {
  const char* name;
  size_t elem_bytes;
  void (*add)(const float* x, int tokens, int in, const void* B, const void* At, const float* s,
              int rank, int out, float* y);
  void (*project)(const float* x, int in, const void* B, const float* s, int k0, int k1, float* u);
  void (*expand)(const float* u, int rank, const void* At, int out, int r0, int r1, float* y);
};
const LowRankTraits& lowrank_traits(LowRankDtype t);

namespace detail {
float dot_scalar(const float* a, const float* b, int n);
float dot_avx2(const float* a, const float* b, int n);
float dot_avx512(const float* a, const float* b, int n);
float dot_f16_scalar(const uint16_t* a, const float* b, int n);
float dot_f16_avx2(const uint16_t* a, const float* b, int n);
float dot_f16_avx512(const uint16_t* a, const float* b, int n);
float dot_i8_scalar(const int8_t* a, const float* b, int n);
float dot_i8_avx2(const int8_t* a, const float* b, int n);
float dot_i8_avx512(const int8_t* a, const float* b, int n);
void axpy_rows_i8_scalar(const float* u, int terms, const int8_t* rows, long rs, int n, float* y);
void axpy_rows_i8_avx2(const float* u, int terms, const int8_t* rows, long rs, int n, float* y);
void axpy_rows_i8_avx512(const float* u, int terms, const int8_t* rows, long rs, int n, float* y);
// y[0..n) += Σ_k u[k]·rows[k·rs + 0..n) for fp16 rows (row stride rs ≥ n).
void axpy_rows_f16_scalar(const float* u, int terms, const uint16_t* rows, long rs, int n, float* y);
void axpy_rows_f16_avx2(const float* u, int terms, const uint16_t* rows, long rs, int n, float* y);
void axpy_rows_f16_avx512(const float* u, int terms, const uint16_t* rows, long rs, int n,
                          float* y);
}  // namespace detail

}  // namespace bwla
