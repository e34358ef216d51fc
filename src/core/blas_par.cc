#include "core/blas_par.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "core/threads.h"

namespace bwla {

namespace {
// Thread t's share [*lo, *hi) of `total` items, in 16-item units (one AVX-512
// register of fp32 outputs): with 64, SmolLM2's 192-wide k/v and 576-wide
// projections split 1:2 and 4:5 over two threads.
constexpr int kUnit = 16;
int num_units(int total) { return (total + kUnit - 1) / kUnit; }
void thread_slice(int total, int* lo, int* hi) {
  const int nt = omp_get_num_threads(), t = omp_get_thread_num(), units = num_units(total);
  *lo = std::min(total, units * t / nt * kUnit);
  *hi = std::min(total, units * (t + 1) / nt * kUnit);
}
}  // namespace

void par_sgemm_nt(int n, int out, int in, float alpha, const float* x, int ldx, const float* w,
                  int ldw, float beta, float* y, int ldy) {
  if (n <= 0 || out <= 0) return;
  if (omp_get_max_threads() == 1 || omp_in_parallel() || num_units(out) < 2 ||
      (long)n * out * in < (1L << 20)) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, alpha, x, ldx, w, ldw, beta,
                y, ldy);
    return;
  }
  BlasSingleThreaded st;
#pragma omp parallel
  {
    int c0, c1;
    thread_slice(out, &c0, &c1);
    if (c1 > c0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, c1 - c0, in, alpha, x, ldx,
                  w + (size_t)c0 * ldw, ldw, beta, y + c0, ldy);
  }
}

void par_sgemv(int out, int in, const float* w, int ldw, const float* x, float* y) {
  if (out <= 0) return;
  if (omp_get_max_threads() == 1 || omp_in_parallel() || num_units(out) < 2 ||
      (long)out * in < (1L << 16)) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, ldw, x, 1, 0.0f, y, 1);
    return;
  }
  BlasSingleThreaded st;
#pragma omp parallel
  {
    int r0, r1;
    thread_slice(out, &r0, &r1);
    if (r1 > r0)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, r1 - r0, in, 1.0f, w + (size_t)r0 * ldw, ldw, x, 1,
                  0.0f, y + r0, 1);
  }
}

}  // namespace bwla
