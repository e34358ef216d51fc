// Threading policy shared by OKT and PSP: small problems run on one thread,
// because OpenMP barriers (and Eigen's GEMM threads) cost more than they save,
// badly so on a loaded 2-core machine.
#pragma once
#include <Eigen/Core>

namespace bwla {

// Element count below which OKT/PSP loops and GEMMs stay single-threaded.
inline constexpr long kOktParallelMin = 1L << 18;

// Limits Eigen's GEMM threads to one for the guard's lifetime when `single`,
// then restores the previous setting.
class EigenThreadLimit {
 public:
  explicit EigenThreadLimit(bool single) : active_(single) {
    if (active_) {
      prev_ = Eigen::nbThreads();
      Eigen::setNbThreads(1);
    }
  }
  ~EigenThreadLimit() {
    if (active_) Eigen::setNbThreads(prev_);
  }
  EigenThreadLimit(const EigenThreadLimit&) = delete;
  EigenThreadLimit& operator=(const EigenThreadLimit&) = delete;

 private:
  bool active_;
  int prev_ = 0;
};

}  // namespace bwla
