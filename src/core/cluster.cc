#include "core/cluster.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"

#ifdef BWLA_HAVE_MPI
#include <mpi.h>
#endif

namespace bwla {

namespace {
double g_moved = 0;
}
double cluster_bytes_moved() { return g_moved; }

#ifdef BWLA_HAVE_MPI
namespace {
bool g_mpi = false;
// Pieces below 2^31 bytes (MPI counts are int).
constexpr size_t kPiece = size_t(1) << 30;
}  // namespace

void cluster_init(int* argc, char*** argv) {
  int provided = 0;
  // The pipeline calls MPI from its main thread only (OpenMP threads never do).
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  g_mpi = true;
}
void cluster_finalize() {
  if (g_mpi) MPI_Finalize();
  g_mpi = false;
}
int cluster_rank() {
  int r = 0;
  if (g_mpi) MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int cluster_size() {
  int n = 1;
  if (g_mpi) MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}
void cluster_send(const void* data, size_t n, int dest) {
  BWLA_ASSERT(g_mpi, "cluster_send without MPI{}", "");
  const char* p = static_cast<const char*>(data);
  g_moved += (double)n;
  for (size_t o = 0; o < n; o += kPiece)
    MPI_Send(p + o, (int)std::min(kPiece, n - o), MPI_BYTE, dest, 0, MPI_COMM_WORLD);
}
void cluster_recv(void* data, size_t n, int src) {
  BWLA_ASSERT(g_mpi, "cluster_recv without MPI{}", "");
  char* p = static_cast<char*>(data);
  g_moved += (double)n;
  for (size_t o = 0; o < n; o += kPiece)
    MPI_Recv(p + o, (int)std::min(kPiece, n - o), MPI_BYTE, src, 0, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
}
void cluster_bcast(void* data, size_t n, int root) {
  if (!g_mpi || cluster_size() == 1) return;
  char* p = static_cast<char*>(data);
  g_moved += (double)n;
  for (size_t o = 0; o < n; o += kPiece)
    MPI_Bcast(p + o, (int)std::min(kPiece, n - o), MPI_BYTE, root, MPI_COMM_WORLD);
}
void cluster_abort(int code) {
  if (g_mpi && cluster_size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}
#else
void cluster_init(int*, char***) {}
void cluster_finalize() {}
int cluster_rank() { return 0; }
int cluster_size() { return 1; }
void cluster_send(const void*, size_t, int) { BWLA_ASSERT(false, "cluster_send without MPI{}", ""); }
void cluster_recv(void*, size_t, int) { BWLA_ASSERT(false, "cluster_recv without MPI{}", ""); }
void cluster_bcast(void*, size_t, int) {}
void cluster_abort(int code) { std::exit(code); }
#endif

void cluster_bcast(std::string& s, int root) {
  if (cluster_size() == 1) return;
  uint64_t n = s.size();
  cluster_bcast(&n, sizeof n, root);
  s.resize(n);
  cluster_bcast(s.data(), n, root);
}

}  // namespace bwla
