// The calibration split and the transfers of a quantization across processes
// (core/cluster.h; docs/SCALING.md). With one process every function here is
// local, and the arithmetic is the same as with N: the output's bytes do not
// depend on the number of ranks.
//
// Determinism: the calibration segments form kCalibGroups fixed groups; a
// slot's XᵀX is the sum of one double partial per group, added in a fixed
// balanced binary tree over the groups ((g0 + g1) + (g2 + g3)), whichever
// rank holds which group. Forward chunks never cross a group boundary, so
// every product sees the same rows at any N.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "format/fake_quant_linear.h"
#include "model/model.h"
#include "quant/matrix.h"

namespace bwla {

// Groups of the fixed reduction tree (a power of two): runs are identical for
// any number of ranks N; ranks beyond this many hold no calibration rows.
constexpr int kCalibGroups = 4;

struct CalibSplit {
  int segments = 0, seq_len = 0, groups = kCalibGroups, ranks = 1, rank = 0;
  CalibSplit(int S, int L, int ranks, int rank);
  int group_begin(int g) const { return (int)((long)segments * g / groups); }  // segment index
  int group_end(int g) const { return group_begin(g + 1); }
  int owner(int g) const { return (int)((long)g * ranks / groups); }
  // This rank's groups [g0, g1) and segments [seg_begin, seg_end) (contiguous).
  int g0 = 0, g1 = 0, seg_begin = 0, seg_end = 0;
  long row_begin() const { return (long)seg_begin * seq_len; }
  long rows() const { return (long)(seg_end - seg_begin) * seq_len; }
};

// XᵀX of one slot over the groups, streamed: add() the rows of this rank's
// groups in order, end_group() after each, then finish() reduces across ranks
// and returns the full symmetric XᵀX on every rank.
class TreeXtx {
 public:
  TreeXtx(int dim, const CalibSplit& split);
  // first_row: the global index of x's first row (named in errors).
  void add(const float* x, long n, long first_row);
  void end_group(int g);
  MatrixD finish();

 private:
  int dim_;
  const CalibSplit& split_;
  std::vector<float> part_;    // one fp32 product of up to XtxAccumulator::kChunk rows
  MatrixD leaf_;               // the group being streamed (lower triangle)
  std::map<std::pair<int, int>, std::vector<double>> nodes_;  // (level, index) -> packed lower triangle
  void put(int level, int index, std::vector<double> v);
};

// Each rank's rows of `local` concatenated in rank order, on every rank.
MatrixRM gather_rows(const MatrixRM& local, int cols);

// Per-rank values gathered in rank order (each rank contributes local.size()).
std::vector<double> gather_doubles(const std::vector<double>& local);

// A quantized linear as bytes (this build's in-memory layout: both ends run
// the same binary) and back.
std::string serialize_linear(const FakeQuantLinear& l);
std::unique_ptr<FakeQuantLinear> deserialize_linear(const std::string& bytes);
// A whole quantized layer (norms + linears), for resume.
std::string serialize_layer(const LayerWeights& L);
LayerWeights deserialize_layer(const std::string& bytes);

}  // namespace bwla
