// The MPI communicator (Open MPI from Debian). MPI is initialised on first use and finalised at
// exit; every call's status is checked (MPI_ERRORS_RETURN on the world communicator).
#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "parallel/comm.h"

namespace moe {
namespace {

std::string mpi_message(int code) {
    char buf[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, buf, &len);
    return std::string(buf, size_t(len));
}

#define MOE_MPI_CALL(what, call)                                                         \
    do {                                                                                 \
        const int rc_ = (call);                                                          \
        if (rc_ != MPI_SUCCESS) return make_error("MPI {}: {}", what, mpi_message(rc_)); \
    } while (0)

class MpiComm final : public Comm {
  public:
    MpiComm() {
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }

    Result<void> allreduce_sum(float* buf, size_t n) override {
        if (size_ == 1 || n == 0) return {};
        // Gathered, then summed here in rank order: the same bits on every rank.
        gathered_.resize(n * size_t(size_));
        MOE_MPI_CALL("allgather", MPI_Allgather(buf, int(n), MPI_FLOAT, gathered_.data(), int(n),
                                                MPI_FLOAT, MPI_COMM_WORLD));
        for (size_t i = 0; i < n; ++i) {
            float s = gathered_[i];
            for (int r = 1; r < size_; ++r) s += gathered_[size_t(r) * n + i];
            buf[i] = s;
        }
        return {};
    }

    Result<void> bcast(void* data, size_t bytes, int root) override {
        if (size_ == 1 || bytes == 0) return {};
        MOE_MPI_CALL("bcast", MPI_Bcast(data, int(bytes), MPI_BYTE, root, MPI_COMM_WORLD));
        return {};
    }

    Result<void> bcast_idle(void* data, size_t bytes, int root) override {
        if (size_ == 1 || bytes == 0) return {};
        MPI_Request req;
        MOE_MPI_CALL("ibcast", MPI_Ibcast(data, int(bytes), MPI_BYTE, root, MPI_COMM_WORLD, &req));
        // Steps follow each other closely while a server generates: spin for 2 ms, then sleep
        // 200 us between polls (an idle server's followers then cost a few % of a core).
        const auto spin_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
        for (;;) {
            int done = 0;
            MOE_MPI_CALL("test", MPI_Test(&req, &done, MPI_STATUS_IGNORE));
            if (done) return {};
            if (std::chrono::steady_clock::now() > spin_until)
                std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }

    Result<void> alltoallv(const float* send, const int* send_counts, const int* send_offs,
                           float* recv, const int* recv_counts, const int* recv_offs) override {
        MOE_MPI_CALL("alltoallv", MPI_Alltoallv(send, send_counts, send_offs, MPI_FLOAT, recv,
                                                recv_counts, recv_offs, MPI_FLOAT, MPI_COMM_WORLD));
        return {};
    }

    Result<void> allgatherv(float* buf, const int* counts, const int* offs) override {
        if (size_ == 1) return {};
        MOE_MPI_CALL("allgatherv", MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts,
                                                  offs, MPI_FLOAT, MPI_COMM_WORLD));
        return {};
    }

    Result<std::vector<std::string>> allgather(const std::string& mine) override {
        int len = int(mine.size());
        std::vector<int> lens(static_cast<size_t>(size_)), offs(static_cast<size_t>(size_));
        MOE_MPI_CALL("allgather",
                     MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD));
        int total = 0;
        for (int r = 0; r < size_; ++r) offs[size_t(r)] = total, total += lens[size_t(r)];
        std::string all(size_t(total), '\0');
        MOE_MPI_CALL("allgatherv",
                     MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(),
                                    offs.data(), MPI_CHAR, MPI_COMM_WORLD));
        std::vector<std::string> out;
        for (int r = 0; r < size_; ++r)
            out.push_back(all.substr(size_t(offs[size_t(r)]), size_t(lens[size_t(r)])));
        return out;
    }

    Result<void> barrier(double timeout_s) override {
        MPI_Request req;
        MOE_MPI_CALL("ibarrier", MPI_Ibarrier(MPI_COMM_WORLD, &req));
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        for (;;) {
            int done = 0;
            MOE_MPI_CALL("test", MPI_Test(&req, &done, MPI_STATUS_IGNORE));
            if (done) return {};
            if (std::chrono::steady_clock::now() > deadline)
                return make_error(
                    "rank {}: not every one of the {} ranks reached the start-up barrier within "
                    "{:.0f} s",
                    rank_, size_, timeout_s);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }

    [[noreturn]] void abort(int code) override {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code);
    }

  private:
    int rank_ = 0, size_ = 1;
    std::vector<float> gathered_;
};

void finalize_at_exit() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

}  // namespace

bool mpi_available() {
    return true;
}

const char* thread_level_name(int level) {
    switch (level) {
        case MPI_THREAD_SINGLE:
            return "MPI_THREAD_SINGLE";
        case MPI_THREAD_FUNNELED:
            return "MPI_THREAD_FUNNELED";
        case MPI_THREAD_SERIALIZED:
            return "MPI_THREAD_SERIALIZED";
        default:
            return "MPI_THREAD_MULTIPLE";
    }
}

Result<std::unique_ptr<Comm>> make_mpi_comm(bool several_threads) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        // SERIALIZED whatever the command: asking costs nothing, and what was provided is
        // checked below for the commands that need it.
        int provided = MPI_THREAD_SINGLE;
        if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
            return make_error("--expert-parallel: MPI_Init_thread failed");
        std::atexit(finalize_at_exit);
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    }
    int provided = MPI_THREAD_SINGLE;
    MPI_Query_thread(&provided);
    if (several_threads && provided < MPI_THREAD_SERIALIZED)
        return make_error(
            "--expert-parallel: this MPI library provides {} only; serve needs "
            "MPI_THREAD_SERIALIZED (MPI calls from its loading and scheduler threads)",
            thread_level_name(provided));
    return std::unique_ptr<Comm>(new MpiComm());
}

}  // namespace moe
