// One forward pass of a batch through the model (the transformer's equations, in order).
#pragma once

#include <vector>

#include "core/result.h"
#include "core/thread_pool.h"
#include "models/batch.h"
#include "models/kv_cache.h"
#include "models/model.h"

namespace moe {

// Evaluates the batch, appending to the KV cache, and writes logits [n_outputs, n_vocab] for the
// tokens flagged in b.logits, in batch order. trace (optional) receives the router decisions.
Result<void> forward(const Model& m, const Batch& b, KvCache& kv, ThreadPool& pool,
                     std::vector<float>& logits, RouterTrace* trace = nullptr);

}  // namespace moe
