#include "parallel/expert_parallel.h"

#include <fmt/core.h>

#include <chrono>
#include <cstring>
#include <fstream>

#include "models/expert_cache.h"
#include "models/model.h"

namespace moe {
namespace {

double seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// FNV-1a, 64 bits: a start-up agreement check, not a security measure.
uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

}  // namespace

ExpertParallel::ExpertParallel(Comm& comm, ExpertPlacement p, std::shared_ptr<ExpertStore> inner)
    : comm_(comm), inner_(std::move(inner)), placement_(std::move(p)) {
    stats_.computed.assign(placement_.owner.size(), 0);
}

void ExpertParallel::reset_ep_stats() {
    stats_ = {};
    stats_.computed.assign(placement_.owner.size(), 0);
}

Result<void> ExpertParallel::share_routing(int il, int32_t* ids, float* weights, size_t n) {
    if (comm_.size() == 1) return {};
    const double t0 = seconds();
    msg_.resize(n * (sizeof(int32_t) + sizeof(float)));  // one message: ids, then weights
    if (comm_.rank() == 0) {
        std::memcpy(msg_.data(), ids, n * sizeof(int32_t));
        std::memcpy(msg_.data() + n * sizeof(int32_t), weights, n * sizeof(float));
    }
    if (auto r = comm_.bcast(msg_.data(), msg_.size(), 0); !r)
        return make_error("layer {}: routing broadcast: {}", il, r.message());
    if (comm_.rank() != 0) {
        std::memcpy(ids, msg_.data(), n * sizeof(int32_t));
        std::memcpy(weights, msg_.data() + n * sizeof(int32_t), n * sizeof(float));
    }
    stats_.comm_s += seconds() - t0;
    return {};
}

Result<void> ExpertParallel::combine(int il, float* y, size_t n, int64_t computed) {
    stats_.computed[size_t(il)] += computed;
    if (comm_.size() == 1) return {};
    const double t0 = seconds();
    if (auto r = comm_.allreduce_sum(y, n); !r)
        return make_error("layer {}: combining the experts' outputs: {}", il, r.message());
    stats_.comm_s += seconds() - t0;
    ++stats_.combines;
    return {};
}

Result<std::shared_ptr<ExpertParallel>> attach_expert_parallel(Model& m, Comm& comm,
                                                               const ExpertParallelOptions& o,
                                                               uint64_t* resident) {
    const ModelConfig& c = m.config;
    std::vector<std::vector<double>> counts;
    if (o.placement == Placement::Balanced) {
        if (o.routing_stats.empty())
            return make_error(
                "--ep-placement balanced needs --ep-routing-stats FILE.json (from `moeinfer run "
                "... --routing-stats`) for the experts' expected load");
        MOE_TRY(counts, read_routing_counts(o.routing_stats, c.n_moe_layers(), c.moe.n_expert));
    }
    MOE_TRY(ExpertPlacement p,
            place_experts(c.is_moe, c.moe.n_expert, comm.size(), o.placement, counts));
    if (dynamic_cast<const ExpertParallel*>(m.experts.get()))
        return make_error("--expert-parallel: the model is already split (internal)");
    auto ep = std::make_shared<ExpertParallel>(comm, std::move(p), m.experts);
    const int rank = comm.rank();
    const ExpertPlacement& pl = ep->placement();
    uint64_t bytes = 0;  // a --mem-budget cache reads only the experts asked for already
    const auto mine = [&pl, rank](int il, int e) {
        return pl.owner[size_t(il)][size_t(e)] == rank;
    };
    if (dynamic_cast<const ResidentExpertStore*>(m.experts.get())) {
        MOE_TRY(bytes, keep_owned_experts_resident(m, mine));
    }
    if (resident) *resident = bytes;
    m.experts = ep;
    return ep;
}

std::string startup_digest(const Model& m, const ExpertPlacement& p, const std::string& options) {
    uint64_t h = fnv1a(options.data(), options.size());
    // The file's header (GGUF: metadata and tensor table; the first MiB, read here) and size.
    // Its path is not hashed: it may differ between machines.
    if (m.source) {
        const uint64_t size = m.source->file_bytes();
        h = fnv1a(&size, sizeof(size), h);
        std::ifstream in(m.source->path(), std::ios::binary);
        if (in) {
            std::string head(size_t(1) << 20, '\0');
            in.read(head.data(), std::streamsize(head.size()));
            h = fnv1a(head.data(), size_t(std::max<std::streamsize>(in.gcount(), 0)), h);
        }
    }
    const ModelConfig& c = m.config;
    const int dims[] = {c.n_layer,           c.n_embd,      c.n_vocab, c.moe.n_expert,
                        c.moe.n_expert_used, c.moe.n_ff_exp};
    h = fnv1a(dims, sizeof(dims), h);
    for (const auto& o : p.owner)
        if (!o.empty()) h = fnv1a(o.data(), o.size() * sizeof(int), h);
    return fmt::format("{:016x}", h);
}

Result<void> check_ranks_agree(Comm& comm, const std::string& digest, double timeout_s) {
    MOE_TRY_VOID(comm.barrier(timeout_s));
    MOE_TRY(const auto all, comm.allgather(digest));
    for (int r = 1; r < int(all.size()); ++r)
        if (all[size_t(r)] != all[0])
            return make_error(
                "rank {} was started with a different model file or options than rank 0 "
                "(start-up digest {} vs {}): start every rank with the same file and options",
                r, all[size_t(r)], all[0]);
    return {};
}

}  // namespace moe
