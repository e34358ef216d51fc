// Packed ±1 weights of a binarized linear layer: ŵ_ij = α_i·b_ij + μ_i, b ∈ {−1,+1}.
//
// Bit layout (part of the on-disk format; CPU independent):
//   row i occupies words bits[i*words_per_row .. (i+1)*words_per_row);
//   column j of row i is bit (j % 64) of word (j / 64), bit 0 = least
//   significant; the word itself is stored little-endian when serialised.
//   A set bit means b_ij = +1 (m_ij = 1), a clear bit b_ij = −1.
//   words_per_row = ceil(cols / 512) * 8 (rows are padded to 512 bits so every
//   row starts 64-byte aligned); padding bits are zero.
#pragma once
#include <cstdint>
#include <vector>

#include "core/aligned.h"

namespace bwla {

struct PackedBinary {
  int rows = 0, cols = 0;
  int words_per_row = 0;          // 64-bit words, multiple of 8
  AlignedBuffer<uint64_t> bits;   // rows * words_per_row (unused when `view` is set)
  // Non-owning alternative to `bits` (e.g. a memory-mapped packed model): same
  // layout, 64-byte aligned, kept alive by the owner of the PackedBinary.
  const uint64_t* view = nullptr;
  std::vector<float> alpha, mu;   // per output row
  std::vector<int32_t> row_popcount;  // Σ_j m_ij

  const uint64_t* row(int i) const {
    return (view ? view : bits.data()) + (size_t)i * words_per_row;
  }
  bool bit(int i, int j) const { return (row(i)[j >> 6] >> (j & 63)) & 1; }
};

// Words per row for `cols` columns (padded to 512 bits).
inline int packed_words_per_row(int cols) { return (cols + 511) / 512 * 8; }

// Packs a row-major [rows, cols] matrix: bit set iff value > 0.
// alpha / mu may be null (then α = 1, μ = 0).
PackedBinary pack_binary(const float* signs_or_w, int rows, int cols, const float* alpha,
                         const float* mu);

// Writes ±1 into a row-major [rows, cols] float matrix.
void unpack_binary_signs(const PackedBinary& w, float* signs);
// Writes the dequantized weights α_i·b_ij + μ_i into [rows, cols].
void unpack_binary(const PackedBinary& w, float* out);

}  // namespace bwla
