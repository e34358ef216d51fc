// fp32 matrix products split over OpenMP threads, each running single-threaded
// OpenBLAS on its own slice. OpenBLAS's own pool waits in sched_yield loops and,
// next to OpenMP workers spinning between regions, two thread systems fight for
// two vCPUs: keeping one system (OpenMP) for every hot product avoids that.
#pragma once

namespace bwla {

// y[n, out] = alpha · x[n, in] · w[out, in]ᵀ + beta · y (row-major, leading
// dimensions ldx, ldw, ldy). Output columns are split over the OpenMP threads in
// multiples of 16; runs as one plain sgemm inside a parallel region or with one
// thread.
void par_sgemm_nt(int n, int out, int in, float alpha, const float* x, int ldx, const float* w,
                  int ldw, float beta, float* y, int ldy);

}  // namespace bwla
