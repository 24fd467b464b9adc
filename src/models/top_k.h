// Overriding the number of routed experts per token (`eval --top-k`): the model keeps every rule
// that follows selection (renormalisation, routed_scaling_factor, shared experts, softmax after
// top-k); only k changes. Grouped routing (DeepSeek n_group / n_group_used) keeps its group
// limit while the kept groups hold at least k experts; beyond that the limit is widened to the
// fewest groups that hold k (ceil(k / experts per group)), so `all` keeps every group.
#pragma once

#include <memory>

#include "core/result.h"
#include "models/model.h"

namespace moe {

// The k the model file specifies (n_expert_used unless overridden).
int native_top_k(const MoeConfig& c);

// Sets k routed experts per token (1..n_expert) on a configuration; an error names the bounds.
Result<void> override_top_k(ModelConfig& c, int k);

// A model that shares base's weights (no copy) but routes k experts per token. base must
// outlive it; base itself is unchanged, so both can run side by side in separate sessions.
Result<std::unique_ptr<Model>> with_top_k(const Model& base, int k);

}  // namespace moe
