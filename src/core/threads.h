// Thread-count control. All parallel loops use OpenMP with static schedules.
#pragma once

namespace bwla {
// Sets the number of threads for OpenMP and OpenBLAS (n <= 0: all cores).
void set_num_threads(int n);
int num_threads();
}  // namespace bwla
