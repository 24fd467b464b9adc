// The communicator expert parallelism runs over: the few collective steps it needs, so nothing
// above this file sees MPI. Implementations: one process (comm_single.cpp; every collective is
// the identity) and MPI (comm_mpi.cpp, built with -DMOE_MPI=ON).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace moe {

class Comm {
  public:
    virtual ~Comm() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // buf[n] becomes the sum over ranks, added in rank order ((r0 + r1) + r2 ...), so every
    // rank holds the same bits whatever the MPI library's reduction tree.
    virtual Result<void> allreduce_sum(float* buf, size_t n) = 0;
    // `bytes` of data from rank `root` to every rank.
    virtual Result<void> bcast(void* data, size_t bytes, int root) = 0;
    // The same, for a message the other ranks may wait long for (a server's next step): they
    // poll, then sleep between polls, instead of spinning a core while idle.
    virtual Result<void> bcast_idle(void* data, size_t bytes, int root) = 0;
    // MPI_Alltoallv of floats: to each rank j the send_counts[j] floats at send + send_offs[j];
    // from each rank j its recv_counts[j] floats into recv + recv_offs[j] (j = this rank too).
    virtual Result<void> alltoallv(const float* send, const int* send_counts, const int* send_offs,
                                   float* recv, const int* recv_counts, const int* recv_offs) = 0;
    // buf holds every rank's block (counts[j] floats at offs[j]): this rank's block is filled in,
    // the others are received (MPI_Allgatherv in place).
    virtual Result<void> allgatherv(float* buf, const int* counts, const int* offs) = 0;
    // Every rank's string, in rank order (start-up checks, per-rank statistics).
    virtual Result<std::vector<std::string>> allgather(const std::string& mine) = 0;
    // Waits for every rank; an error when they have not all arrived within timeout_s.
    virtual Result<void> barrier(double timeout_s) = 0;
    // Ends every rank of the job (after this rank printed its error): no rank is left waiting.
    [[noreturn]] virtual void abort(int code) = 0;
};

// One process: rank 0 of 1.
std::unique_ptr<Comm> make_single_comm();

// Whether this binary was built with MPI.
bool mpi_available();
// Initialises MPI (once per process) and returns the world communicator; an error when the
// binary was built without MPI. several_threads: MPI calls will come from more than one thread,
// never two at once (serve: loading on one thread, steps on the scheduler's), which needs
// MPI_THREAD_SERIALIZED: an error when the library does not provide it.
Result<std::unique_ptr<Comm>> make_mpi_comm(bool several_threads = false);

}  // namespace moe
