#include "parallel/expert_parallel.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <climits>
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

Result<CombineMode> parse_combine_mode(const std::string& s) {
    if (s == "auto") return CombineMode::Auto;
    if (s == "gather") return CombineMode::Gather;
    if (s == "alltoallv") return CombineMode::Alltoallv;
    return make_error("--ep-combine '{}' is not one of auto, gather, alltoallv", s);
}

bool alltoallv_pays(int n_ranks, int64_t rows) {
    // Measured with bench/bench_ep_combine (OLMoE's shape: n_embd 2048, top-8 of 64; one 2-core
    // machine, loaded; 3 rounds of 21 alternating reps, medians, ms per combine, gather /
    // alltoallv): 2 ranks: T=1 0.005 / 0.006, T=4 0.013 / 0.011, T=16 0.048 / 0.026,
    // T=64 0.19 / 0.11, T=256 0.89 / 0.65, T=512 9.9 / 18.3 (2 of 3 rounds for the gather);
    // 3 ranks: T=1 0.035 / 0.037, T=4 0.05 / 0.05, T=16 0.18 / 0.09, T=64 0.91 / 0.39,
    // T=256 8.0 / 3.5, T=512 17.7 / 7.3. Below ~8 rows the two are equal (latency); from 16 the
    // Alltoallv path is 1.5-2.5x faster (each rank adds only its block's rows, and from 3 ranks
    // fewer bytes move), except 2 ranks at 512 rows (4 MiB messages), where the gather won.
    if (rows < 8) return false;
    return n_ranks > 2 || rows < 512;
}

bool ExpertParallel::uses_alltoallv(int64_t T) const {
    switch (combine_mode_) {
        case CombineMode::Gather:
            return false;
        case CombineMode::Alltoallv:
            return true;
        case CombineMode::Auto:
            break;
    }
    return alltoallv_pays(comm_.size(), T);
}

Result<void> ExpertParallel::combine(int il, float* y, int64_t T, int n_embd,
                                     std::span<const int32_t> ids, bool with_shared,
                                     int64_t computed) {
    stats_.computed[size_t(il)] += computed;
    if (comm_.size() == 1) return {};
    const double t0 = seconds();
    const bool sparse = uses_alltoallv(T);
    auto r = sparse ? combine_alltoallv(il, y, T, n_embd, ids, with_shared)
                    : comm_.allreduce_sum(y, size_t(T) * size_t(n_embd));
    if (!r) return make_error("layer {}: combining the experts' outputs: {}", il, r.message());
    stats_.comm_s += seconds() - t0;
    ++stats_.combines;
    stats_.combines_alltoallv += sparse;
    return {};
}

Result<void> ExpertParallel::combine_alltoallv(int il, float* y, int64_t T, int n_embd,
                                               std::span<const int32_t> ids, bool with_shared) {
    const int N = comm_.size(), me = comm_.rank();
    const size_t E = size_t(n_embd), k = T > 0 ? ids.size() / size_t(T) : 0;
    if (uint64_t(T) * E > uint64_t(INT32_MAX))  // MPI counts are int
        return make_error("a step of {} rows x {} is too large for one Alltoallv", T, n_embd);
    const std::vector<int>& owner = placement_.owner[size_t(il)];
    // Who computed something for each row: the owners of its routed experts, and the shared
    // experts' process (rank 0) for every row.
    contrib_.assign(size_t(N) * size_t(T), 0);  // [N, T]
    for (int64_t t = 0; t < T; ++t) {
        for (size_t j = 0; j < k; ++j)
            contrib_[size_t(owner[size_t(ids[size_t(t) * k + j])]) * size_t(T) + size_t(t)] = 1;
        if (with_shared) contrib_[size_t(t)] = 1;
    }
    const auto block = [T, N](int b) { return T * b / N; };  // rows [block(b), block(b + 1))
    const auto contributes = [&](int r, int64_t t) {
        return contrib_[size_t(r) * size_t(T) + size_t(t)] != 0;
    };
    const size_t n_ranks = size_t(N);
    std::vector<int> send_n(n_ranks), send_off(n_ranks), recv_n(n_ranks), recv_off(n_ranks);
    send_.clear();
    for (int b = 0; b < N; ++b) {  // my rows, grouped by the rank reducing them
        send_off[size_t(b)] = int(send_.size());
        for (int64_t t = block(b); t < block(b + 1); ++t)
            if (contributes(me, t))
                send_.insert(send_.end(), y + size_t(t) * E, y + size_t(t + 1) * E);
        send_n[size_t(b)] = int(send_.size()) - send_off[size_t(b)];
    }
    int64_t total = 0;
    for (int r = 0; r < N; ++r) {  // rank r's rows of my block
        recv_off[size_t(r)] = int(total);
        for (int64_t t = block(me); t < block(me + 1); ++t)
            total += contributes(r, t) ? int64_t(E) : 0;
        recv_n[size_t(r)] = int(total) - recv_off[size_t(r)];
    }
    recv_.resize(size_t(total));
    MOE_TRY_VOID(comm_.alltoallv(send_.data(), send_n.data(), send_off.data(), recv_.data(),
                                 recv_n.data(), recv_off.data()));
    // My block, each row summed in rank order (as the gather path: +0 for ranks without a part).
    std::vector<size_t> at(recv_off.begin(), recv_off.end());
    for (int64_t t = block(me); t < block(me + 1); ++t) {
        float* out = y + size_t(t) * E;
        std::fill(out, out + E, 0.0f);
        for (int r = 0; r < N; ++r) {
            if (!contributes(r, t)) continue;
            const float* part = recv_.data() + at[size_t(r)];
            for (size_t i = 0; i < E; ++i) out[i] += part[i];
            at[size_t(r)] += E;
        }
    }
    std::vector<int> n(n_ranks), off(n_ranks);
    for (int b = 0; b < N; ++b)
        off[size_t(b)] = int(block(b) * int64_t(E)),
        n[size_t(b)] = int((block(b + 1) - block(b)) * int64_t(E));
    return comm_.allgatherv(y, n.data(), off.data());
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
    ep->set_combine(o.combine);
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
