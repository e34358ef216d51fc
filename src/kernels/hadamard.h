// Randomized Hadamard input transform (QuaRot-style), the untrained
// counterpart of OKT.
//
// dim = p·m with p = 2^k the largest power of two dividing dim:
//   R = A ⊗ Q_m,  A = H_p·D/√p  (H_p Sylvester–Walsh–Hadamard, D = diag(±1) random),
//   Q_m = Haar-random orthogonal m×m (QR of a seeded Gaussian matrix, column
//   signs fixed by sign(diag R)); m = 1 gives the plain randomized Hadamard.
// A vector v is viewed row-major as V (p×m), v[i·m + j] = V(i, j), so
// R·v = vec(A·V·Q_mᵀ). Cost per token O(dim·(log p + m)).
// Examples: 2048 = 2^11 (m=1), 1536 = 2^9·3, 5632 = 2^9·11, 172 = 2^2·43.
//
// Storage: the transform is regenerated from (dim, seed), so storage_bits()
// counts only the 64-bit seed. explicit_storage_bits() gives the cost of
// storing it explicitly instead (p sign bits + m² fp32 entries of Q_m).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/input_transform.h"

namespace bwla {

class HadamardTransform : public InputTransform {
 public:
  HadamardTransform(int dim, uint64_t seed);
  int dim() const override { return dim_; }
  void apply_rows(float* x, long rows) const override { apply(x, rows, false); }
  void apply_rows_inverse(float* x, long rows) const override { apply(x, rows, true); }
  double storage_bits() const override { return 64.0; }
  double explicit_storage_bits() const { return (double)p_ + 32.0 * (double)m_ * m_; }
  std::string kind() const override { return "hadamard"; }
  int pow2_factor() const { return p_; }
  int odd_factor() const { return m_; }
  uint64_t seed() const { return seed_; }

 private:
  void apply(float* x, long rows, bool inverse) const;
  int dim_, p_, m_;
  uint64_t seed_;
  std::vector<float> signs_;   // D, length p
  std::vector<float> q_, qt_;  // Q_m and Q_mᵀ (m×m row-major); empty when m == 1
};

std::unique_ptr<InputTransform> make_random_hadamard(int dim, uint64_t seed);

// In-place unnormalised fast Walsh–Hadamard transform over the p rows of a
// p×m row-major block (each butterfly acts on whole rows). p must be 2^k.
void fwht_rows(float* x, int p, int m);

// The orthogonal factor Q of g = Q·R (g: n×n row-major, doubles) with the
// signs of Q's columns chosen so that diag(R) ≥ 0: the unique such Q when g is
// invertible (a Haar-random orthogonal matrix for a Gaussian g). Householder
// reflections in double.
std::vector<double> orthogonal_factor(std::vector<double> g, int n);

}  // namespace bwla
