// The shared MoE block, a pipeline of named stages:
//   1. route    logits = x·routerᵀ (+b) → scores (softmax | sigmoid) → (+selection bias)
//               → group-limited top-k → weights (renormalise, scale)
//   2-4. ops::moe_experts: tokens grouped by expert, each active expert's products over its
//        tokens (gate, up, act, down), the weighted scatter-add back to token order
//   5. shared experts (sigmoid-gated where the family has a gate), added
// Families configure it through MoeConfig; nothing here tests which family runs.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "models/expert_shard.h"
#include "models/expert_store.h"
#include "models/model.h"

namespace moe {

// Stage 1 for one token. logits: [n_expert]. ids/weights: [n_expert_used] out.
void route_token(const MoeConfig& c, const float* logits, const F32Vec& selection_bias,
                 int32_t* ids, float* weights);

// How decisive a routing decision is: the k-th best minus the (k+1)-th best selection value
// (infinity when no expert competes). Near-ties (tiny margins) flip under any rounding change.
float selection_margin(const MoeConfig& c, const float* logits, const F32Vec& selection_bias);
// The values top-k ranks ([n_expert]; -inf outside the kept expert groups).
std::vector<float> selection_values(const MoeConfig& c, const float* logits,
                                    const F32Vec& selection_bias);

// y[T, n_embd] = MoE(x[T, n_embd]) of layer il, its routed experts from `store`.
// router_logits (optional) receives [T, n_expert]; ids/weights (optional) [T, n_expert_used].
// route (optional, a test seam) replaces stage 1's selection; it is called with `il`.
// shard (optional): expert parallelism (models/expert_shard.h): routing shared, only owned
// experts computed, partial outputs combined.
// Errors: the store could not supply an expert (a cached store's file shrank or failed).
Result<void> moe_forward(const MoeConfig& c, const MoeWeights& w, int il, ExpertStore& store,
                         const float* x, int64_t T, int n_embd, ThreadPool& pool, float* y,
                         float* router_logits, int32_t* ids_out, float* weights_out,
                         const RouteOverride* route = nullptr, ExpertShard* shard = nullptr);

// The experts (distinct ids, ascending) this layer's router and selection pick for h[T, n_embd]:
// the speculative prefetch applies layer l+1's router to layer l's output, normalized.
std::vector<int32_t> predict_experts(const MoeConfig& c, const MoeWeights& w, const float* h,
                                     int64_t T, ThreadPool& pool);

// y[T, n_embd] = down(silu(gate(x)) * up(x)).
void ffn_forward(const FfnWeights& w, const float* x, int64_t T, ThreadPool& pool, float* y);

}  // namespace moe
