// The cached expert store (--mem-budget): routed experts live in a fixed pool of slots, one slot
// = one expert's gate + up + down bytes of one layer, filled with pread from the GGUF file by a
// few I/O threads (the experts' pages of the mapping are never touched, and the pages read are
// dropped from the page cache, so the budget holds for the machine). Everything else of the
// model is copied into anonymous memory at attach time (models/expert_cache.cpp).
//
// Eviction among unpinned slots: empty slots first, then
//   lru:  the least recently used expert;
//   lfru: the least frequently used, frequencies counted per (layer, expert) over every access
//         and halved every `slots` accesses (aging), ties by least recent use.
// A pinned slot (an expert the current layer is computing) is never evicted.
//
// Speculative prefetch (--prefetch on; off by default, docs/memory-budget.md): after layer l, the
// forward pass applies layer l+1's FFN norm, router and selection to layer l's output and hands
// the predicted experts to prefetch(); their misses are read on the I/O threads while layer
// l+1's attention runs (demand reads go first). A prefetch takes victims by the same policy but
// never another expert of the same prediction, and is not an access (no frequency count).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/result.h"
#include "models/expert_store.h"
#include "models/kv_layout.h"

namespace moe {

enum class CachePolicy { Lru, Lfru };
Result<CachePolicy> parse_cache_policy(const std::string& s);
const char* cache_policy_name(CachePolicy p);

struct ExpertBudget {
    double budget_gib = 0;  // whole process: weights + KV + buffers
    int n_ctx = 0;          // context the KV estimate is sized for (0: min(train, 4096))
    int n_seq = 1;
    KvTypes kv_types;  // what the KV estimate is sized for
    CachePolicy policy = CachePolicy::Lfru;
    int io_threads = 4;
    bool prefetch = false;  // speculative prefetch of layer l+1 (ExpertStore::prefetch)
    uint64_t slots = 0;     // > 0: exactly this many slots, no budget arithmetic (tests, studies)
};

// What the budget buys, from the model's sizes and this process's measured resident set.
struct BudgetPlan {
    uint64_t budget = 0;
    uint64_t resident = 0;  // measured RSS + KV + buffers estimate
    uint64_t kv = 0, buffers = 0;
    uint64_t expert_bytes = 0;  // all routed experts of the file
    uint64_t slot_bytes = 0;
    uint64_t slots = 0;
    uint64_t min_budget = 0;    // resident + one layer's top-k experts
    bool all_resident = false;  // the budget holds every expert
};

// The budget's estimate of activation buffers and runtime overhead at a context of n_ctx.
uint64_t budget_buffer_bytes(const ModelConfig& c, int n_ctx);

// What a budget holds besides the expert slots: the non-expert weights, the KV cache of n_seq
// sequences at n_ctx positions, buffers. The one formula of `inspect --mem-budget`'s prediction
// and of attach_expert_cache (which adds the process's resident set at start, rss0).
struct BudgetFixedPart {
    uint64_t non_expert = 0, kv = 0, buffers = 0;
    uint64_t total() const { return non_expert + kv + buffers; }
};
BudgetFixedPart budget_fixed_part(const ModelConfig& c, uint64_t non_expert_bytes, int n_ctx,
                                  int n_seq, KvTypes kv_types);

// Bytes of the routed experts' weights in the model (what a cache would hold).
uint64_t routed_expert_bytes(const Model& m);

// Applies a budget to a model loaded with mapping population off (set_populate_mappings(false)):
// either every expert fits (the mapping is populated, the resident store stays; `note` says so)
// or the non-expert ranges are copied into memory and m.experts becomes a cache of the slots the
// budget leaves. Errors: the budget is below the minimum (the message states it in GiB), the
// model is not one GGUF file holding its experts.
Result<BudgetPlan> attach_expert_cache(Model& m, const ExpertBudget& b, std::string& note);

// Expert parallelism: the model's GGUF mapping (loaded with mapping population off) gets its
// non-expert ranges and the routed experts `owned(il, e)` says this process computes copied into
// memory; the other experts' pages are never touched. Returns the bytes made resident, or 0
// when the model is not one mapped GGUF file (then nothing changes: it is held as loaded).
Result<uint64_t> keep_owned_experts_resident(const Model& m,
                                             const std::function<bool(int, int)>& owned);

// A cache over an explicit number of slots (tests, and attach_expert_cache).
Result<std::shared_ptr<ExpertStore>> make_expert_cache(const Model& m, uint64_t slots,
                                                       CachePolicy policy, int io_threads,
                                                       bool prefetch = false);

}  // namespace moe
