// Expert parallelism over a Comm (parallel/comm.h): the ExpertShard the MoE block calls
// (models/expert_shard.h), the placement it follows, and per-rank counters.
//   routing: rank 0's top-k ids and weights are broadcast every MoE layer (one message);
//   combine: partial outputs summed in rank order, so every rank holds the same hidden state
//            bits and the ranks cannot drift apart. Two ways (CombineMode):
//     gather:    every rank's T x n_embd partials to every rank (Comm::allreduce_sum), each rank
//                sums all rows: one collective, (N-1) T n_embd floats received per rank;
//     alltoallv: rows split into N blocks, rank j reduces block j: every rank sends each block's
//                owner only the rows it computed something for (the routing is shared, so each
//                rank knows who sends what: no counts are exchanged), the owner sums them in
//                rank order, then the blocks are allgathered. (N-1)/N T n_embd (1 + f) floats
//                received per rank (f: share of rows a rank computed for), in two collectives.
//   Both add each row's partials in rank order (ranks that computed nothing add +0), so the
//   paths give the same bits.
// Shared experts run on rank 0 only; a routed expert's bias (gpt-oss) is added by its owner.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "models/expert_shard.h"
#include "models/expert_store.h"
#include "parallel/comm.h"
#include "parallel/placement.h"

namespace moe {

class Model;

struct ExpertParallelStats {
    std::vector<int64_t> computed;  // [n_layer]: rows x experts this rank computed
    double comm_s = 0;              // in routing broadcasts and combines (waiting included)
    int64_t combines = 0, combines_alltoallv = 0;
};

enum class CombineMode { Auto, Gather, Alltoallv };  // --ep-combine
Result<CombineMode> parse_combine_mode(const std::string& s);
// auto: whether a step of `rows` rows is combined with Alltoallv over n_ranks (the measured
// break-even, expert_parallel.cpp): from 8 rows; with 2 ranks below 512.
bool alltoallv_pays(int n_ranks, int64_t rows);

// The store of an expert-parallel process: the experts come from the store it wraps (resident,
// or a --mem-budget cache), and it says which of them are this process's own (the MoE block
// finds it as the model's store: Model::experts).
class ExpertParallel final : public ExpertStore, public ExpertShard {
  public:
    ExpertParallel(Comm& comm, ExpertPlacement p, std::shared_ptr<ExpertStore> inner);
    Result<size_t> acquire(int il, std::span<const int32_t> active) override {
        return inner_->acquire(il, active);
    }
    Result<size_t> wait_ready(int il, size_t from) override { return inner_->wait_ready(il, from); }
    std::span<const ops::ExpertWeights> views(int il) const override { return inner_->views(il); }
    void release(int il) override { inner_->release(il); }
    ExpertStoreStats stats() const override { return inner_->stats(); }
    void reset_stats() override {
        inner_->reset_stats();
        reset_ep_stats();
    }

    bool owns(int il, int e) const override {
        return placement_.owner[size_t(il)][size_t(e)] == comm_.rank();
    }
    bool computes_shared() const override { return comm_.rank() == 0; }
    Result<void> share_routing(int il, int32_t* ids, float* weights, size_t n) override;
    Result<void> combine(int il, float* y, int64_t T, int n_embd, std::span<const int32_t> ids,
                         bool with_shared, int64_t computed) override;
    void set_combine(CombineMode m) { combine_mode_ = m; }
    // Whether a step of T rows is combined with Alltoallv.
    bool uses_alltoallv(int64_t T) const;

    Comm& comm() const { return comm_; }
    const ExpertPlacement& placement() const { return placement_; }
    const ExpertParallelStats& ep_stats() const { return stats_; }
    void reset_ep_stats();

  private:
    Result<void> combine_alltoallv(int il, float* y, int64_t T, int n_embd,
                                   std::span<const int32_t> ids, bool with_shared);

    Comm& comm_;
    std::shared_ptr<ExpertStore> inner_;
    ExpertPlacement placement_;
    ExpertParallelStats stats_;
    std::vector<uint8_t> msg_;
    CombineMode combine_mode_ = CombineMode::Auto;
    std::vector<uint8_t> contrib_;    // [n_ranks, T]: rank r computed something for row t
    std::vector<float> send_, recv_;  // alltoallv: rows grouped by destination / by source
};

struct ExpertParallelOptions {
    Placement placement = Placement::Contiguous;
    std::string routing_stats;  // balanced: the --routing-stats JSON
    CombineMode combine = CombineMode::Auto;
};

// Places the experts over comm's ranks, keeps this rank's experts (and every non-expert weight)
// resident and nothing else (models/expert_cache.h), and wraps m.experts in the shard. `resident`
// receives the weight bytes this rank holds (0 when the file is not one mapped GGUF).
Result<std::shared_ptr<ExpertParallel>> attach_expert_parallel(Model& m, Comm& comm,
                                                               const ExpertParallelOptions& o,
                                                               uint64_t* resident = nullptr);

// A digest of what every rank must agree on (model file header, options, placement), as text
// to compare across ranks.
std::string startup_digest(const Model& m, const ExpertPlacement& p, const std::string& options);

// Compares the ranks' digests (allgather) and waits for all of them (barrier with timeout):
// an error naming the first rank that differs from rank 0.
Result<void> check_ranks_agree(Comm& comm, const std::string& digest, double timeout_s);

}  // namespace moe
