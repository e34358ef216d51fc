#include "core/blas_par.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "core/threads.h"

namespace bwla {

namespace {
// Items [0, total) in 16-item units (one AVX-512 register of fp32 outputs): with
// 64, SmolLM2's 192-wide k/v and 576-wide projections split 1:2 and 4:5 over
// two threads.
constexpr int kUnit = 16;

// Calls f(lo, hi) once per OpenMP thread on its own unit-aligned share of
// [0, total), with OpenBLAS single-threaded; or once as f(0, total) with one
// thread, inside a parallel region, for fewer than 2 units, or when `work` is
// below `min_work`.
template <class F>
void split_over_threads(int total, long work, long min_work, F&& f) {
  const int units = (total + kUnit - 1) / kUnit;
  if (omp_get_max_threads() == 1 || omp_in_parallel() || units < 2 || work < min_work) {
    f(0, total);
    return;
  }
  BlasSingleThreaded st;
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int lo = std::min(total, units * t / nt * kUnit);
    const int hi = std::min(total, units * (t + 1) / nt * kUnit);
    if (hi > lo) f(lo, hi);
  }
}
}  // namespace

void par_sgemm_nt(int n, int out, int in, float alpha, const float* x, int ldx, const float* w,
                  int ldw, float beta, float* y, int ldy) {
  if (n <= 0 || out <= 0) return;
  split_over_threads(out, (long)n * out * in, 1L << 20, [&](int c0, int c1) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, c1 - c0, in, alpha, x, ldx,
                w + (size_t)c0 * ldw, ldw, beta, y + c0, ldy);
  });
}

}  // namespace bwla
