// BiLLM-family block binarizer (BiLLM arXiv 2402.04291; ARB-LLM arXiv
// 2410.03129), run inside the GPTQ column sweep (gptq.h).
//
// Per block F of block_size columns (current, error-compensated values):
//  1. Column salience s_j = Σ_i w_ij² / U_jj², with U the upper Cholesky factor
//     of H⁻¹ (U_jj² is the conditional [H⁻¹]_jj of the sweep, so s_j is the
//     OBS loss of zeroing column j).
//  2. Salient columns: the k most salient, k ∈ [0, salient_max] chosen to
//     minimise the U_jj⁻²-weighted block error (salient: residual binarization,
//     rest: one binary group per row).
//  3. Non-salient weights are split by |w| ≤ t ("concentrated") / |w| > t
//     ("sparse") with t searched on a grid of fractions of max|w| (shared by the
//     block's rows); each group gets its own α, μ per row.
//  4. Fitting: salient entries get two planes μ + α1·b1 + α2·b2 (second plane on
//     the residual; its offset is folded into μ), groups one plane each:
//       Xnor  — closed form (BiLLM);
//       Arb   — ARB alternating refinement;
//       ArbX  — Arb, then all α, μ of the row refitted jointly by least squares in
//               the block's effective output metric S_F = (U_FFᵀ·U_FF)⁻¹ (the
//               Schur complement of H onto F given that later columns still
//               compensate; the block's exact contribution to tr(ΔHΔᵀ) is
//               Σ_rows δ·S_F·δᵀ). Kept only if it lowers that metric.
//       ArbRC — ŵ_ij = a_i·b_ij·c_j + μ_i per group (row and column scales).
//  With groups = false there is a single group per row per block (no salient
//  columns, no bitmap).
//
// Storage counted per block (R rows, C columns, k salient): R·C sign bits,
// R·k second-plane bits, (groups) R·(C−k) group-bitmap bits and C salient-mask
// bits, and 16 bits per stored scale/mean: per row 3 for salient (α1, α2, μ) and
// 2 per non-empty group; ArbRC stores per group R row scales + R means + one
// column scale per column present (second plane: R + k).
// paper_bits follows the papers' convention: signs + second plane + column mask.
#pragma once
#include <memory>
#include <string>

#include "quant/binarize.h"
#include "quant/gptq.h"
#include "quant/rc_factors.h"

namespace bwla {

enum class BinRefine { Xnor, Arb, ArbX, ArbRC };

struct BlockBinarizerConfig {
  BinRefine refine = BinRefine::Xnor;
  bool groups = true;
  int arb_iters = 15;
  int salient_max = 16;
  int split_candidates = 40;
};

struct BinarizeStats {
  double storage_bits = 0, paper_bits = 0;
  long salient_cols = 0, blocks = 0, xrefit_kept = 0, xrefit_rows = 0;
};

class BlockBinarizer : public ColumnQuantizer {
 public:
  explicit BlockBinarizer(const BlockBinarizerConfig& cfg) : cfg_(cfg) {}
  void begin_block(int c0, const MatrixCM& wblk, const Eigen::Ref<const MatrixRM>& ublk) override;
  void quantize_column(int j, int jj, const MatrixCM& wblk, float* q) override;
  const BinarizeStats& stats() const { return st_; }
  // Keep every block's factors (quant/rc_factors.h; column scales 1 except
  // for ArbRC) for a rows × cols matrix swept in block_cols-column blocks.
  void record_rc_factors(int rows, int cols, int block_cols) {
    rc_ = std::make_shared<RcFactors>(rows, cols, block_cols);
  }
  std::shared_ptr<RcFactors> rc_factors() const { return rc_; }

 private:
  void record_rc(int c0, int g, const GroupIds& gid, const ArbRcFit& f1, const ArbRcFit* f2);
  // The documented steps of begin_block after the grouping (billm.cc).
  double fit_arb_rc(int c0, const MatrixRM& w, const GroupIds& gid, MatrixRM& wh);
  double fit_planes(int c0, const MatrixRM& w, const Eigen::Ref<const MatrixRM>& ublk,
                    const GroupIds& gid, MatrixRM& wh);
  // fit_planes' steps for row i (billm.cc): the groups' planes (recording
  // ArbX's basis when `basis` has columns; returns the scales stored), and
  // the factors of a refitted row.
  struct RowBasis;
  struct RowScratch;
  double fit_row_groups(long i, int c0, const MatrixRM& w, const GroupIds& gid, MatrixRM& wh,
                        RowBasis& basis, RowScratch& s);
  void record_refit(long i, int c0, const GroupIds& gid, const Eigen::VectorXd& coef, int K);
  void count_storage(long rows, int cols, int salient, double scale_count);
  BlockBinarizerConfig cfg_;
  MatrixCM q_;
  BinarizeStats st_;
  std::shared_ptr<RcFactors> rc_;
};

// W -> Ŵ with the block binarizer inside the GPTQ sweep (dead columns zeroed).
// rc (optional): with ArbRC or column groups, receives the factors of Ŵ
// (the column-group form `bwla pack` stores); otherwise null.
MatrixRM binarize_quantize(const MatrixRM& w, const PreparedHessian& hp,
                           const BlockBinarizerConfig& cfg, int block_size, BinarizeStats* st,
                           std::shared_ptr<RcFactors>* rc = nullptr);

}  // namespace bwla
