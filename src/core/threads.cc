#include "core/threads.h"

#include <omp.h>

#include <mutex>
#include <thread>

extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace bwla {
void set_num_threads(int n) {
  if (n <= 0) n = (int)std::thread::hardware_concurrency();
  if (n <= 0) n = 1;
  omp_set_num_threads(n);
  if (openblas_set_num_threads) openblas_set_num_threads(n);
}
int num_threads() { return omp_get_max_threads(); }

namespace {
// Guards may nest and may live on several threads at once (linears quantized
// side by side): OpenBLAS goes back to num_threads() when the last one ends.
std::mutex g_blas_mu;
int g_blas_depth = 0;
}  // namespace

BlasSingleThreaded::BlasSingleThreaded() {
  std::lock_guard<std::mutex> lock(g_blas_mu);
  if (g_blas_depth++ == 0 && openblas_set_num_threads) openblas_set_num_threads(1);
}
BlasSingleThreaded::~BlasSingleThreaded() {
  std::lock_guard<std::mutex> lock(g_blas_mu);
  if (--g_blas_depth == 0 && openblas_set_num_threads)
    openblas_set_num_threads(omp_get_max_threads());
}
int BlasSingleThreaded::depth() {
  std::lock_guard<std::mutex> lock(g_blas_mu);
  return g_blas_depth;
}
}  // namespace bwla
