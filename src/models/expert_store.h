// The expert store: the one place the MoE block gets a routed expert's weights from. After
// routing, moe_forward hands the store the layer's active experts (distinct ids, ascending),
// acquires them, computes the ones that are ready range by range (ops::ExpertRange keeps the
// result bit-identical to one call) and releases them. Implementations:
//   resident (here): views into the model's tensors, built once; zero work per token.
//   cached (models/expert_cache.h): a budgeted pool of slots filled from the file by I/O threads.
// The seam is four calls on ids, so a remote (expert-parallel) or GPU tier can sit behind it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/result.h"
#include "kernels/ops.h"

namespace moe {

class Model;

// Counters of one MoE layer (cached store; a resident store counts nothing).
struct ExpertLayerStats {
    uint64_t hits = 0, misses = 0;
    uint64_t bytes_read = 0;  // from disk
    double stall_s = 0;       // compute waiting for this layer's reads
    // Speculative prefetch (ExpertStore::prefetch): experts predicted for this layer, those of
    // them then routed, reads the prediction started, and accesses that found such a read's slot.
    uint64_t predicted = 0, predicted_used = 0, prefetched = 0, prefetch_hits = 0;
    void add(const ExpertLayerStats& o) {
        hits += o.hits, misses += o.misses, bytes_read += o.bytes_read, stall_s += o.stall_s;
        predicted += o.predicted, predicted_used += o.predicted_used;
        prefetched += o.prefetched, prefetch_hits += o.prefetch_hits;
    }
};

struct ExpertStoreStats {
    bool cached = false;
    bool prefetch = false;  // speculative prefetch of the next layer on
    std::string policy;
    uint64_t slots = 0, slot_bytes = 0;
    std::vector<ExpertLayerStats> layers;  // [n_layer] (dense layers stay zero)
    ExpertLayerStats total() const {
        ExpertLayerStats t;
        for (const auto& l : layers) t.add(l);
        return t;
    }
};

class ExpertStore {
  public:
    virtual ~ExpertStore() = default;
    // Pins a prefix of `active` (distinct ids of layer il, ascending) and starts reading the
    // pinned experts it does not hold; returns the prefix length (at least 1 when active is not
    // empty). The span must stay valid until release().
    virtual Result<size_t> acquire(int il, std::span<const int32_t> active) = 0;
    // Waits until the pinned expert at index `from` of the acquired prefix is ready; returns
    // the end of the run of ready experts starting there (> from). Read errors surface here.
    virtual Result<size_t> wait_ready(int il, size_t from) = 0;
    // Layer il's views, indexed by expert id; valid for the pinned, ready experts.
    virtual std::span<const ops::ExpertWeights> views(int il) const = 0;
    // Unpins what acquire() pinned in layer il.
    virtual void release(int il) = 0;
    // Speculative prefetch: whether the store wants a prediction of the next layer's experts,
    // and the prediction itself (distinct ids of layer il, ascending), given before layer il's
    // acquire. A hint: it may start reads, never blocks on them, and changes no result.
    virtual bool wants_prediction() const { return false; }
    virtual void prefetch(int /*il*/, std::span<const int32_t> /*predicted*/) {}
    virtual ExpertStoreStats stats() const { return {}; }
    virtual void reset_stats() {}
};

// Today's behaviour: every expert held, views into the model's stacked tensors.
class ResidentExpertStore final : public ExpertStore {
  public:
    explicit ResidentExpertStore(const Model& m);
    Result<size_t> acquire(int, std::span<const int32_t> active) override { return active.size(); }
    Result<size_t> wait_ready(int, size_t) override { return n_acquired_max_; }
    std::span<const ops::ExpertWeights> views(int il) const override { return views_[size_t(il)]; }
    void release(int) override {}

  private:
    size_t n_acquired_max_ = size_t(1) << 30;             // everything acquired is ready
    std::vector<std::vector<ops::ExpertWeights>> views_;  // [n_layer][n_expert]
};

// Layer il's views into the model's own tensors ([n_expert]; empty for dense layers).
std::vector<ops::ExpertWeights> resident_expert_views(const Model& m, int il);

}  // namespace moe
