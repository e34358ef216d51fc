// Thread-count control. All parallel loops use OpenMP with static schedules.
#pragma once

namespace bwla {
// Sets the number of threads for OpenMP and OpenBLAS (n <= 0: all cores).
void set_num_threads(int n);
int num_threads();

// Limits OpenBLAS to one thread for its lifetime (restored to num_threads()
// after the last of nested or concurrent guards ends): for callers that split a BLAS product over OpenMP threads themselves.
// OpenBLAS's own pool yields in a loop while waiting, which on a 2-vCPU VM with
// hypervisor steal made 2-thread fp32 prefill barely faster than 1 thread.
class BlasSingleThreaded {
 public:
  BlasSingleThreaded();
  ~BlasSingleThreaded();
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;
  static int depth();  // guards alive now (for tests)
};
}  // namespace bwla
