// Attention variants over the KV cache. Both write this batch's keys/values (or latents) into the
// cache first, then let each token attend causally to its own sequence's positions.
#pragma once

#include "core/thread_pool.h"
#include "models/batch.h"
#include "models/kv_cache.h"
#include "models/model.h"

namespace moe {

// out[T, n_embd] = Wo · softmax(q·kᵀ·scale [+ sink]) · v, standard multi-head / grouped-query.
void attention_forward(const AttentionConfig& c, const AttentionWeights& w, int il,
                       const float* x, const Batch& b, int n_embd, float rms_eps, KvCache& kv,
                       ThreadPool& pool, float* out);

// DeepSeek MLA with the absorbed form: scores are computed against the cached latent directly.
void mla_forward(const MlaConfig& c, const MlaWeights& w, int il, const float* x, const Batch& b,
                 int n_embd, float rms_eps, KvCache& kv, ThreadPool& pool, float* out);

}  // namespace moe
