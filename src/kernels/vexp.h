// Vectorized fp32 exp and the two model ops built on it (SiLU gate, softmax).
//
// exp: x = n·ln2 + r (n = round-half-even(x·log2 e), r by a two-part ln2 with
// FMAs), e^r by the Cephes degree-6 polynomial, scaled by 2^n in two exact
// steps. Relative error ≤ 2.5e-7 against the true value over the normal range
// (tests/test_kernels_vexp.cc); x > 88.7228 gives +inf, x < −104 gives 0, NaN
// stays NaN. Every ISA performs the same correctly-rounded operations in the
// same order (std::fma in the scalar reference), so all three give the same
// bits, and the results do not depend on BWLA_ISA.
//
// softmax sums in 16 interleaved partial sums (element i into sum i mod 16)
// reduced by a fixed tree, the same order in every ISA.
#pragma once

namespace bwla {

// y[i] = e^x[i]; y may equal x.
void vexp(const float* x, float* y, long n);

// a[i] = a[i] / (1 + e^(−a[i])) · b[i]  (SiLU(a) ⊙ b, the SwiGLU gate).
void silu_mul_vec(float* a, const float* b, long n);

// x = softmax(x) in place (max-subtracted), n ≥ 1.
void softmax_vec(float* x, int n);

namespace detail {
void vexp_scalar(const float* x, float* y, long n);
void vexp_avx2(const float* x, float* y, long n);
void vexp_avx512(const float* x, float* y, long n);
void silu_mul_scalar(float* a, const float* b, long n);
void silu_mul_avx2(float* a, const float* b, long n);
void silu_mul_avx512(float* a, const float* b, long n);
// Σ x[i] in the 16-partial-sum order.
float sum16_scalar(const float* x, long n);
float sum16_avx2(const float* x, long n);
float sum16_avx512(const float* x, long n);
}  // namespace detail

}  // namespace bwla
