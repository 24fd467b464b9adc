// The two expert-parallel combines (parallel/expert_parallel.h: gather, alltoallv) timed alone,
// under `mpirun -np N`: every rank holds T x n_embd partial outputs for routing drawn at random
// (uniform top-k of n_expert, contiguous placement); each timed combine starts after a blocking
// collective, so the figure is the combine itself, not waiting for a slower rank's experts; the
// two paths alternate rep by rep. Prints, on
// rank 0, the median over reps of the slowest rank's time per combine, per T and path.
// Usage: mpirun -np N bench_ep_combine [n_embd=2048] [n_expert=64] [top_k=8] [reps=30]
//        [T list=1,4,16,64,128,256,512]
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "parallel/expert_parallel.h"

using namespace moe;

int main(int argc, char** argv) {
    const int n_embd = argc > 1 ? std::atoi(argv[1]) : 2048;
    const int n_expert = argc > 2 ? std::atoi(argv[2]) : 64;
    const int top_k = argc > 3 ? std::atoi(argv[3]) : 8;
    const int reps = argc > 4 ? std::atoi(argv[4]) : 30;
    std::vector<int64_t> Ts = {1, 4, 16, 64, 128, 256, 512};
    if (argc > 5) {
        Ts.clear();
        std::stringstream ss(argv[5]);
        for (std::string t; std::getline(ss, t, ',');) Ts.push_back(std::atoll(t.c_str()));
    }
    auto comm_r = make_mpi_comm();
    if (!comm_r) {
        fmt::print(stderr, "error: {}\n", comm_r.message());
        return 1;
    }
    Comm& comm = **comm_r;
    auto placement = place_experts({1}, n_expert, comm.size(), Placement::Contiguous);
    if (!placement) {
        fmt::print(stderr, "error: {}\n", placement.message());
        return 1;
    }
    ExpertParallel ep(comm, *placement, nullptr);
    if (comm.rank() == 0)
        fmt::print(
            "ranks {}, n_embd {}, top-{} of {} experts, median of {} reps (ms per combine, "
            "slowest rank)\n| T | gather | alltoallv |\n|---|---|---|\n",
            comm.size(), n_embd, top_k, n_expert, reps);
    std::mt19937 rng(7);  // the same routing on every rank
    for (const int64_t T : Ts) {
        std::vector<int32_t> ids(size_t(T) * size_t(top_k));
        for (int64_t t = 0; t < T; ++t) {
            std::vector<int32_t> all(static_cast<size_t>(n_expert));
            for (int e = 0; e < n_expert; ++e) all[size_t(e)] = e;
            std::shuffle(all.begin(), all.end(), rng);
            std::copy(all.begin(), all.begin() + top_k, ids.begin() + t * top_k);
        }
        std::vector<float> y(size_t(T) * size_t(n_embd));
        std::vector<double> ms[2];  // per path; the paths alternate rep by rep
        for (int r = 0; r < reps; ++r)
            for (int path = 0; path < 2; ++path) {
                ep.set_combine(path == 0 ? CombineMode::Gather : CombineMode::Alltoallv);
                std::fill(y.begin(), y.end(), 1.0f);
                // A blocking collective lines the ranks up (barrier() polls with sleeps).
                if (!comm.allgather("")) return 1;
                const auto t0 = std::chrono::steady_clock::now();
                if (auto c = ep.combine(0, y.data(), T, n_embd, ids, false, 0); !c) {
                    fmt::print(stderr, "error: {}\n", c.message());
                    comm.abort(1);
                }
                const double mine =
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count();
                auto all = comm.allgather(fmt::format("{:.6f}", mine));
                double worst = 0;
                for (const auto& x : *all) worst = std::max(worst, std::atof(x.c_str()));
                ms[path].push_back(worst);
            }
        double med[2];
        for (int path = 0; path < 2; ++path) {
            auto& v = ms[path];
            std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
            med[path] = v[v.size() / 2];
        }
        if (comm.rank() == 0) fmt::print("| {} | {:.3f} | {:.3f} |\n", T, med[0], med[1]);
    }
    return 0;
}
