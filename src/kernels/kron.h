// Kronecker-factored rotation of token vectors (OKT rotation of a BWLA layer), fp32.
//
// A token vector x of length n1·n2 is viewed as the row-major matrix
// V[a][b] = x[a·n2 + b] (a < n1, b < n2) and replaced by vec(R1ᵀ·V·R2), i.e.
// y = (R1ᵀ ⊗ R2ᵀ)·x with row-major vec. R1: [n1, n1], R2: [n2, n2], row-major.
#pragma once

namespace bwla {

// x, y: [tokens, n1·n2]; y may equal x (in place). Dispatches through kernels() (kernels/dispatch.h).
void kron_apply(const float* x, float* y, int tokens, const float* R1, int n1, const float* R2,
                int n2);

// kron_apply of one token split in two stages, so that the threads of an
// enclosing parallel region can share it by row ranges of V (with a barrier
// between the stages, and before stage 1 writes tmp / stage 2 writes y if
// those alias data still being read):
//   stage 1: tmp[a][:] = V[a][:]·R2            for a in [a0, a1)
//   stage 2: y[a][:]   = Σ_c R1[c][a]·tmp[c][:] for a in [a0, a1)
// x, tmp, y: n1·n2 floats; y may equal x but not tmp.
void kron_stage1(const float* x, float* tmp, int a0, int a1, const float* R2, int n2);
void kron_stage2(const float* tmp, float* y, int a0, int a1, const float* R1, int n1, int n2);

namespace detail {
// out[0..n) = Σ_{c < terms} coef[c·coef_stride] · rows[c·row_stride + 0..n)
void lincomb_scalar(const float* coef, long coef_stride, int terms, const float* rows,
                    long row_stride, int n, float* out);
void lincomb_avx2(const float* coef, long coef_stride, int terms, const float* rows,
                  long row_stride, int n, float* out);
void lincomb_avx512(const float* coef, long coef_stride, int terms, const float* rows,
                    long row_stride, int n, float* out);
// nrows output rows: out[r·os + 0..n) = lincomb of coef + r·crs (stride ccs).
void lincomb_block_scalar(const float* coef, long crs, long ccs, int nrows, int terms,
                          const float* rows, long rs, int n, float* out, long os);
void lincomb_block_avx2(const float* coef, long crs, long ccs, int nrows, int terms,
                        const float* rows, long rs, int n, float* out, long os);
void lincomb_block_avx512(const float* coef, long crs, long ccs, int nrows, int terms,
                          const float* rows, long rs, int n, float* out, long os);
}  // namespace detail

}  // namespace bwla
