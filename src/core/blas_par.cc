#include "core/blas_par.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/threads.h"

namespace bwla {

namespace {
// Products below this many multiply-adds run as one call: splitting them costs
// more in OpenMP wake-ups than it saves.
constexpr long kMinWork = 1L << 20;
// Column pieces are multiples of 16 columns (one AVX-512 register of fp32
// outputs).
constexpr int kColUnit = 16;
// Row blocks of about kRowTarget rows: re-packing w per block stays cheap next
// to the block's compute, and there are enough blocks to share among threads.
constexpr long kRowTarget = 128, kRowMin = 16;
// Rows from which a product is cut by rows: w is packed once per block, and x
// (the larger operand then) is packed only once in total.
constexpr int kRowSplitMin = 256;
constexpr long kColTarget = 16, kColMin = 2;  // in 16-column units
// Square tiles of the SYRK triangle.
constexpr int kSyrkTile = 128;
}  // namespace

void for_fixed_chunks(long total, long chunks, long align,
                      const std::function<void(long, long)>& f) {
  if (total <= 0) return;
  chunks = std::max(1L, chunks);
  align = std::max(1L, align);
  const long units = (total + align - 1) / align;
  auto piece = [&](long c) {
    const long lo = std::min(total, units * c / chunks * align);
    const long hi = std::min(total, units * (c + 1) / chunks * align);
    if (hi > lo) f(lo, hi);
  };
  if (chunks == 1 || num_threads() == 1 || omp_in_parallel()) {
    for (long c = 0; c < chunks; ++c) piece(c);
    return;
  }
  // Dynamic: a thread descheduled on a busy machine delays only its pieces;
  // which thread runs a piece does not change its result.
#pragma omp parallel for schedule(dynamic, 1)
  for (long c = 0; c < chunks; ++c) piece(c);
}

long fixed_chunk_count(long units, long work, long target, long min_units) {
  if (work < kMinWork || units < 2 * min_units) return 1;
  long c = (units + target - 1) / target;
  c = (c + 3) / 4 * 4;
  return std::max(1L, std::min(c, units / min_units));
}

long fixed_row_chunks(long rows, long work) {
  return fixed_chunk_count(rows, work, kRowTarget, kRowMin);
}

void par_sgemm_nt(int n, int out, int in, float alpha, const float* x, int ldx, const float* w,
                  int ldw, float beta, float* y, int ldy) {
  if (n <= 0 || out <= 0) return;
  const long work = (long)n * out * in;
  if (n >= kRowSplitMin) {
    for_fixed_chunks(n, fixed_row_chunks(n, work), 1, [&](long r0, long r1) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), out, in, alpha,
                  x + (size_t)r0 * ldx, ldx, w, ldw, beta, y + (size_t)r0 * ldy, ldy);
    });
    return;
  }
  const long units = (out + kColUnit - 1) / kColUnit;
  for_fixed_chunks(out, fixed_chunk_count(units, work, kColTarget, kColMin), kColUnit,
                   [&](long c0, long c1) {
                     cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)(c1 - c0), in,
                                 alpha, x, ldx, w + (size_t)c0 * ldw, ldw, beta, y + c0, ldy);
                   });
}

void par_ssyrk_upper(int dim, int n, const float* x, int ldx, float* c, int ldc) {
  if (dim <= 0) return;
  const long work = (long)dim * dim * n / 2;
  if (work < kMinWork || dim <= kSyrkTile) {
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, n, 1.0f, x, ldx, 0.0f, c, ldc);
    return;
  }
  // Tiles (bi, bj), bi <= bj, of the upper triangle: diagonal ones by SYRK,
  // the others by GEMM x[:, I]ᵀ·x[:, J]; one piece per tile.
  const int nb = (dim + kSyrkTile - 1) / kSyrkTile;
  std::vector<std::pair<int, int>> tiles;
  for (int bi = 0; bi < nb; ++bi)
    for (int bj = bi; bj < nb; ++bj) tiles.emplace_back(bi, bj);
  for_fixed_chunks((long)tiles.size(), (long)tiles.size(), 1, [&](long t0, long t1) {
    for (long t = t0; t < t1; ++t) {
      const int i0 = tiles[t].first * kSyrkTile, j0 = tiles[t].second * kSyrkTile;
      const int ni = std::min(kSyrkTile, dim - i0), nj = std::min(kSyrkTile, dim - j0);
      float* ct = c + (size_t)i0 * ldc + j0;
      if (i0 == j0)
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, ni, n, 1.0f, x + i0, ldx, 0.0f, ct, ldc);
      else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, nj, n, 1.0f, x + i0, ldx, x + j0,
                    ldx, 0.0f, ct, ldc);
    }
  });
}

}  // namespace bwla
