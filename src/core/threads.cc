#include "core/threads.h"

#include <omp.h>

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

BlasSingleThreaded::BlasSingleThreaded() {
  if (openblas_set_num_threads) openblas_set_num_threads(1);
}
BlasSingleThreaded::~BlasSingleThreaded() {
  if (openblas_set_num_threads) openblas_set_num_threads(omp_get_max_threads());
}
}  // namespace bwla
