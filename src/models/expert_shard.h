// Expert parallelism as the MoE block sees it: which routed experts this process computes and
// the two collective steps around them. The block stays free of any transport: the implementation
// (parallel/expert_parallel.h, over MPI) is attached to Model::shard by the CLI.
//   1. share_routing: one process's top-k ids and weights replace everyone's, so a rounding
//      difference can never send the processes down different experts;
//   2. each process computes only the experts it owns (shared experts: computes_shared());
//   3. combine: the partial outputs are summed over the processes (the same bits on each).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/result.h"

namespace moe {

class ExpertShard {
  public:
    virtual ~ExpertShard() = default;
    // Whether this process computes routed expert e of layer il.
    virtual bool owns(int il, int e) const = 0;
    // Whether this process computes the shared experts (exactly one process does).
    virtual bool computes_shared() const = 0;
    // ids and weights [n] of layer il (T x top-k) become those of the routing process.
    virtual Result<void> share_routing(int il, int32_t* ids, float* weights, size_t n) = 0;
    // y[T, n_embd] (this process's partial outputs of layer il) becomes the sum over processes.
    // ids [T, top-k]: the shared routing (which process computed something for which row);
    // with_shared: the layer has shared experts (they count for the computes_shared() process).
    // `computed`: the rows x top-k this process computed (for its statistics).
    virtual Result<void> combine(int il, float* y, int64_t T, int n_embd,
                                 std::span<const int32_t> ids, bool with_shared,
                                 int64_t computed) = 0;
};

}  // namespace moe
