#include "core/threads.h"

#include <omp.h>

#include <thread>

extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace bwla {
namespace {
// OpenBLAS starts with one thread per core (or OPENBLAS_NUM_THREADS): pin it to
// one before any product runs, also in programs that never call
// set_num_threads. core/blas_par.cc calls num_threads(), so every program that
// splits products links this file.
const bool g_blas_single = [] {
  if (openblas_set_num_threads) openblas_set_num_threads(1);
  return true;
}();
}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = (int)std::thread::hardware_concurrency();
  if (n <= 0) n = 1;
  omp_set_num_threads(n);
  if (openblas_set_num_threads) openblas_set_num_threads(1);
}
int num_threads() {
  (void)g_blas_single;
  return omp_get_max_threads();
}
}  // namespace bwla
