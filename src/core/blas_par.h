// fp32 matrix products split over OpenMP threads, each piece one
// single-threaded OpenBLAS call. OpenBLAS's own pool waits in sched_yield loops
// and, next to OpenMP workers spinning between regions, two thread systems
// fight for two vCPUs: keeping one system (OpenMP) for every hot product
// avoids that.
//
// Determinism: OpenBLAS's result for an element depends on how a product is
// cut (its edge kernels and blocking round differently), and with its own
// threads on, on the thread count. So OpenBLAS always runs single-threaded
// (core/threads.h), and the helpers here cut every product into pieces whose
// boundaries depend only on its shape, never on the thread count: the same
// inputs give the same bits at any -t.
#pragma once

#include <functional>

namespace bwla {

// Calls f(lo, hi) for each of `chunks` pieces of [0, total): piece c spans
// [units·c/chunks·align, units·(c+1)/chunks·align) ∩ [0, total) with
// units = ⌈total/align⌉, so the boundaries depend only on the arguments.
// Pieces run on the OpenMP threads (serially with one thread or inside a
// parallel region); each f must write only its own piece's outputs.
void for_fixed_chunks(long total, long chunks, long align,
                      const std::function<void(long lo, long hi)>& f);

// Piece count for cutting `units` work units (rows, or 16-column blocks) of a
// product of `work` multiply-adds: 1 below a minimum work, else about one
// piece per `target` units, rounded up to a multiple of 4 (even shares at 2 or
// 4 threads), with at least `min_units` units per piece. Shape only.
long fixed_chunk_count(long units, long work, long target, long min_units);
// The same for cutting `rows` output rows of a product (par_sgemm_nt's row blocks).
long fixed_row_chunks(long rows, long work);

// y[n, out] = alpha · x[n, in] · w[out, in]ᵀ + beta · y (row-major, leading
// dimensions ldx, ldw, ldy). Many rows: cut into fixed row blocks; few rows:
// cut into fixed 16-aligned column blocks.
void par_sgemm_nt(int n, int out, int in, float alpha, const float* x, int ldx, const float* w,
                  int ldw, float beta, float* y, int ldy);

// Upper triangle (j >= i) of c[dim, dim] = x[n, dim]ᵀ · x[n, dim] (row-major,
// leading dimensions ldx, ldc): SYRK cut into fixed square tiles of the
// triangle. The strict lower triangle of c is not written.
void par_ssyrk_upper(int dim, int n, const float* x, int ldx, float* c, int ldc);

}  // namespace bwla
