#include "kernels/packed_binary.h"

#include "core/error.h"

namespace bwla {

PackedBinary pack_binary(const float* w, int rows, int cols, const float* alpha, const float* mu) {
  BWLA_CHECK(rows >= 0 && cols >= 0, "pack_binary: bad shape {}x{}", rows, cols);
  PackedBinary p;
  p.rows = rows;
  p.cols = cols;
  p.words_per_row = packed_words_per_row(cols);
  p.bits.resize((size_t)rows * p.words_per_row, /*zero=*/true);
  p.alpha.assign(rows, 1.0f);
  p.mu.assign(rows, 0.0f);
  p.row_popcount.assign(rows, 0);
  for (int i = 0; i < rows; ++i) {
    uint64_t* dst = p.bits.data() + (size_t)i * p.words_per_row;
    const float* src = w + (size_t)i * cols;
    int pc = 0;
    for (int j0 = 0; j0 < cols; j0 += 64) {
      const int n = cols - j0 < 64 ? cols - j0 : 64;
      uint64_t word = 0;
      for (int b = 0; b < n; ++b) word |= (uint64_t)(src[j0 + b] > 0.0f) << b;
      dst[j0 >> 6] = word;
      pc += __builtin_popcountll(word);
    }
    p.row_popcount[i] = pc;
    if (alpha) p.alpha[i] = alpha[i];
    if (mu) p.mu[i] = mu[i];
  }
  return p;
}

void unpack_binary_signs(const PackedBinary& w, float* signs) {
  for (int i = 0; i < w.rows; ++i)
    for (int j = 0; j < w.cols; ++j) signs[(size_t)i * w.cols + j] = w.bit(i, j) ? 1.0f : -1.0f;
}

void unpack_binary(const PackedBinary& w, float* out) {
  for (int i = 0; i < w.rows; ++i)
    for (int j = 0; j < w.cols; ++j)
      out[(size_t)i * w.cols + j] = w.alpha[i] * (w.bit(i, j) ? 1.0f : -1.0f) + w.mu[i];
}

}  // namespace bwla
