#include <algorithm>
#include <cstdlib>

#include "parallel/comm.h"

namespace moe {
namespace {

class SingleComm final : public Comm {
  public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    Result<void> allreduce_sum(float*, size_t) override { return {}; }
    Result<void> bcast(void*, size_t, int) override { return {}; }
    Result<void> bcast_idle(void*, size_t, int) override { return {}; }
    Result<void> alltoallv(const float* send, const int* send_counts, const int* send_offs,
                           float* recv, const int*, const int* recv_offs) override {
        std::copy(send + send_offs[0], send + send_offs[0] + send_counts[0], recv + recv_offs[0]);
        return {};
    }
    Result<void> allgatherv(float*, const int*, const int*) override { return {}; }
    Result<std::vector<std::string>> allgather(const std::string& mine) override {
        return std::vector<std::string>{mine};
    }
    Result<void> barrier(double) override { return {}; }
    [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

}  // namespace

std::unique_ptr<Comm> make_single_comm() {
    return std::make_unique<SingleComm>();
}

#if !defined(MOE_MPI)
bool mpi_available() {
    return false;
}
Result<std::unique_ptr<Comm>> make_mpi_comm(bool) {
    return make_error(
        "--expert-parallel: this moeinfer was built without MPI (install libopenmpi-dev and "
        "openmpi-bin, then configure again with -DMOE_MPI=ON)");
}
#endif

}  // namespace moe
