// Thread-count control. All parallel loops use OpenMP; OpenBLAS always runs
// single-threaded (products are split over OpenMP threads by core/blas_par.h,
// in pieces fixed by the shape), so results do not depend on the thread count.
#pragma once

namespace bwla {
// Sets the number of OpenMP threads (n <= 0: all cores). OpenBLAS stays at one
// thread: with its own threads, its results change with their number, and its
// pool, waiting in sched_yield loops next to OpenMP workers spinning between
// regions, made 2-thread fp32 prefill barely faster than 1 thread on a 2-vCPU VM.
void set_num_threads(int n);
int num_threads();
}  // namespace bwla
