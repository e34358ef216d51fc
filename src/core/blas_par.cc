#include "core/blas_par.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "core/threads.h"

namespace bwla {

void par_sgemm_nt(int n, int out, int in, float alpha, const float* x, int ldx, const float* w,
                  int ldw, float beta, float* y, int ldy) {
  if (n <= 0 || out <= 0) return;
  // 16-column units (one AVX-512 register of outputs): with 64, SmolLM2's
  // 192-wide k/v and 576-wide projections split 1:2 and 4:5 over two threads.
  const int units = (out + 15) / 16;
  if (omp_get_max_threads() == 1 || omp_in_parallel() || units < 2 || (long)n * out * in < (1L << 20)) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, alpha, x, ldx, w, ldw, beta,
                y, ldy);
    return;
  }
  BlasSingleThreaded st;
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int c0 = std::min(out, units * t / nt * 16), c1 = std::min(out, units * (t + 1) / nt * 16);
    if (c1 > c0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, c1 - c0, in, alpha, x, ldx,
                  w + (size_t)c0 * ldw, ldw, beta, y + c0, ldy);
  }
}

void par_sgemv(int out, int in, const float* w, int ldw, const float* x, float* y) {
  if (out <= 0) return;
  const int units = (out + 15) / 16;
  if (omp_get_max_threads() == 1 || omp_in_parallel() || units < 2 || (long)out * in < (1L << 16)) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, ldw, x, 1, 0.0f, y, 1);
    return;
  }
  BlasSingleThreaded st;
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int r0 = std::min(out, units * t / nt * 16), r1 = std::min(out, units * (t + 1) / nt * 16);
    if (r1 > r0)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, r1 - r0, in, 1.0f, w + (size_t)r0 * ldw, ldw, x, 1,
                  0.0f, y + r0, 1);
  }
}

}  // namespace bwla
