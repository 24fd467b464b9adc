#include "cli/expert_parallel_options.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "core/mapped_file.h"
#include "core/sysinfo.h"

namespace moe::cli {
namespace {

std::unique_ptr<Comm> g_comm;     // the job, once joined
std::vector<std::string> g_args;  // argv[1..] as parsed
int g_err_fd = STDERR_FILENO;     // this rank's own stderr (ranks > 0 silence fd 2)
// Ranks start together: 2 minutes at the first barrier is plenty. Loading a rank's share of a
// 400 GB file from a slow disk may take long, so the barrier after loading waits an hour.
constexpr double kStartupTimeoutS = 120, kLoadedTimeoutS = 3600;

// The options every rank must agree on: the command line without the model path (a cluster's
// machines may hold the file at different paths) and thread counts (machines may differ).
std::string options_for_digest() {
    std::string s;
    for (size_t i = 0; i < g_args.size(); ++i) {
        const std::string& a = g_args[i];
        if (a == "-m" || a == "--model" || a == "-t" || a == "--threads") {
            ++i;
            continue;
        }
        s += a;
        s += '\x1f';
    }
    return s;
}

// Rank 0's step messages: their length (the broadcast the followers idle in), then the bytes.
class CommStepChannel final : public StepChannel {
  public:
    explicit CommStepChannel(Comm& c) : comm_(c) {}
    int processes() const override { return comm_.size(); }
    Result<void> exchange(std::vector<uint8_t>& msg) override {
        uint64_t n = msg.size();
        MOE_TRY_VOID(comm_.bcast_idle(&n, sizeof(n), 0));
        if (n > kMaxStepBytes) return make_error("step message of {} bytes", n);
        if (comm_.rank() != 0) msg.resize(size_t(n));
        return comm_.bcast(msg.data(), msg.size(), 0);
    }
    [[noreturn]] void abort(const std::string& why) override {
        report_and_abort_if_parallel(why);
        std::_Exit(1);
    }

  private:
    // A step of 65536 tokens (serve --step-tokens' limit) takes 1 MiB.
    static constexpr uint64_t kMaxStepBytes = uint64_t(64) << 20;
    Comm& comm_;
};

}  // namespace

void add_expert_parallel_options(CLI::App* cmd, ExpertParallelArgs& a) {
    cmd->add_flag_callback(
        "--expert-parallel",
        [&a] {
            a.on = true;
            // Each rank reads only its experts: the file is mapped, not read in.
            set_weight_memory(WeightMemory::Map);
            set_populate_mappings(false);
        },
        "split every MoE layer's experts over the ranks of `mpirun -np N` (needs MPI)");
    cmd->add_option("--ep-placement", a.placement,
                    "which rank owns which experts: contiguous (default) or balanced (needs "
                    "--ep-routing-stats)")
        ->check(CLI::IsMember({"contiguous", "balanced"}));
    cmd->add_option("--ep-combine", a.combine,
                    "how the ranks' partial outputs are summed: gather (all rows to all ranks), "
                    "alltoallv (each rank reduces a block of rows from the rows each rank "
                    "computed for, then the blocks are gathered), auto (by rows per step)")
        ->check(CLI::IsMember({"auto", "gather", "alltoallv"}));
    cmd->add_option("--ep-routing-stats", a.routing_stats,
                    "a --routing-stats JSON whose per-layer expert counts balance the placement");
}

void set_command_line(const std::vector<std::string>& args) {
    g_args = args;
}

Result<void> join_expert_parallel(const ExpertParallelArgs& a, bool several_threads) {
    if (!a.on) {
        if (a.placement != "contiguous" || !a.routing_stats.empty() || a.combine != "auto")
            return make_error(
                "--ep-placement, --ep-routing-stats and --ep-combine need --expert-parallel");
        return {};
    }
    MOE_TRY(g_comm, make_mpi_comm(several_threads));
    // The options first (cheap, before any rank spends minutes loading); the file and the
    // placement after loading (apply_expert_parallel).
    MOE_TRY_VOID(check_ranks_agree(*g_comm, options_for_digest(), kStartupTimeoutS));
    if (g_comm->rank() != 0) {  // output on rank 0 only; errors still reach this rank's stderr
        g_err_fd = ::dup(STDERR_FILENO);
        const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            std::fflush(stdout);
            std::fflush(stderr);
            ::dup2(null, STDOUT_FILENO);
            ::dup2(null, STDERR_FILENO);
            ::close(null);
        }
    }
    return {};
}

Result<std::shared_ptr<ExpertParallel>> apply_expert_parallel(Model& m,
                                                              const ExpertParallelArgs& a) {
    if (!a.on || !g_comm) return std::shared_ptr<ExpertParallel>();
    ExpertParallelOptions o;
    MOE_TRY(o.placement, parse_placement(a.placement));
    o.routing_stats = a.routing_stats;
    MOE_TRY(o.combine, parse_combine_mode(a.combine));
    MOE_TRY(auto ep, attach_expert_parallel(m, *g_comm, o));
    MOE_TRY_VOID(check_ranks_agree(
        *g_comm, startup_digest(m, ep->placement(), options_for_digest()), kLoadedTimeoutS));
    return ep;
}

Result<std::string> expert_parallel_table(const ExpertParallel& ep, double wall_s) {
    const ExpertParallelStats& st = ep.ep_stats();
    const ExpertPlacement& p = ep.placement();
    const int rank = ep.comm().rank();
    int64_t rows = 0, owned = 0, max_layer = 0;
    for (size_t il = 0; il < st.computed.size(); ++il) {
        rows += st.computed[il];
        max_layer = std::max(max_layer, st.computed[il]);
        if (!p.owner[il].empty()) owned += p.owned(rank, int(il));
    }
    const auto pm = read_process_memory();
    const std::string mine = fmt::format("{} {} {} {:.6f} {:.6f} {}", owned, rows, max_layer,
                                         st.comm_s, wall_s, pm ? pm->peak_rss : 0);
    MOE_TRY(const auto all, ep.comm().allgather(mine));
    if (rank != 0) return std::string();
    int64_t total_rows = 0;
    std::vector<std::array<double, 6>> v;
    for (const auto& s : all) {
        std::array<double, 6> x{};
        std::sscanf(s.c_str(), "%lf %lf %lf %lf %lf %lf", &x[0], &x[1], &x[2], &x[3], &x[4], &x[5]);
        total_rows += int64_t(x[1]);
        v.push_back(x);
    }
    int n_moe = 0;
    for (const auto& o : p.owner) n_moe += !o.empty();
    std::string out = fmt::format(
        "expert parallel: {} ranks, {} MoE layers x {} experts; combines: {} gather, {} "
        "alltoallv\n"
        "| rank | experts owned (all layers) | expert rows computed | share | max in one layer | "
        "comm s | comm share of {:.2f} s | peak RSS |\n|---|---|---|---|---|---|---|---|\n",
        p.n_ranks, n_moe, p.n_expert, st.combines - st.combines_alltoallv, st.combines_alltoallv,
        wall_s);
    for (size_t r = 0; r < v.size(); ++r)
        out += fmt::format("| {} | {} | {} | {:.1f}% | {} | {:.3f} | {:.1f}% | {:.1f} MiB |\n", r,
                           int64_t(v[r][0]), int64_t(v[r][1]),
                           total_rows > 0 ? 100.0 * v[r][1] / double(total_rows) : 0.0,
                           int64_t(v[r][2]), v[r][3], v[r][4] > 0 ? 100.0 * v[r][3] / v[r][4] : 0.0,
                           v[r][5] / double(1 << 20));
    return out;
}

nlohmann::json expert_parallel_json(const ExpertParallel& ep) {
    const ExpertPlacement& p = ep.placement();
    nlohmann::json j;
    j["ranks"] = p.n_ranks;
    auto& layers = j["layers"] = nlohmann::json::array();
    for (size_t il = 0; il < p.owner.size(); ++il)
        if (!p.owner[il].empty()) layers.push_back({{"layer", il}, {"rank", p.owner[il]}});
    return j;
}

std::unique_ptr<StepChannel> make_step_channel() {
    if (!g_comm) return nullptr;
    return std::make_unique<CommStepChannel>(*g_comm);
}

bool is_output_rank() {
    return !g_comm || g_comm->rank() == 0;
}

Comm* job_comm() {
    return g_comm.get();
}

void report_and_abort_if_parallel(const std::string& line) {
    if (!g_comm) return;
    const std::string s = g_comm->size() > 1
                              ? "error: rank " + std::to_string(g_comm->rank()) + ": " + line + "\n"
                              : "error: " + line + "\n";
    if (::write(g_err_fd, s.data(), s.size()) < 0) {
    }
    if (g_comm->size() > 1) g_comm->abort(1);
}

}  // namespace moe::cli
