// The processes one quantization runs on: this process alone, or, in a build
// with -DBWLA_MPI=ON started by mpirun, the ranks of MPI_COMM_WORLD. Only
// quantize splits work across ranks (pipeline/quantize.cc); the messages are
// blocking point-to-point transfers and broadcasts of raw bytes, so the same
// code runs with one process and no MPI at all.
#pragma once
#include <cstddef>
#include <string>

namespace bwla {

// Called once by main before anything else (MPI_Init_thread when built with
// MPI; a no-op otherwise) and at exit.
void cluster_init(int* argc, char*** argv);
void cluster_finalize();

int cluster_rank();
int cluster_size();

// Blocking transfers of n bytes (any size: sent in pieces below MPI's int
// counts). With one process they are never called by the pipeline.
void cluster_send(const void* data, size_t n, int dest);
void cluster_recv(void* data, size_t n, int src);
// Root's n bytes to every rank.
void cluster_bcast(void* data, size_t n, int root);
// Root's string (size, then bytes) to every rank.
void cluster_bcast(std::string& s, int root);
// Bytes this rank has sent and received so far (a broadcast counts its size
// once on every rank), for the per-layer communication figures.
double cluster_bytes_moved();
// Ends every rank after an error on this one (an exception on one rank would
// leave the others waiting in a transfer forever).
[[noreturn]] void cluster_abort(int code);

}  // namespace bwla
