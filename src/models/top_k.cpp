#include "models/top_k.h"

#include <algorithm>

namespace moe {

int native_top_k(const MoeConfig& c) {
    return c.n_expert_used_native > 0 ? c.n_expert_used_native : c.n_expert_used;
}

Result<void> override_top_k(ModelConfig& c, int k) {
    MoeConfig& m = c.moe;
    if (c.n_moe_layers() == 0 || m.n_expert <= 0)
        return make_error("the model has no MoE layers: there is no routing to override");
    if (k < 1 || k > m.n_expert)
        return make_error("top-k {} is outside [1, {}] (the model has {} experts per layer)", k,
                          m.n_expert, m.n_expert);
    if (m.n_expert_used_native == 0) {
        m.n_expert_used_native = m.n_expert_used;
        m.n_group_used_native = m.n_group_used;
    }
    m.n_expert_used = k;
    m.n_group_used = m.n_group_used_native;
    if (m.n_group > 1) {  // the kept groups must hold k experts
        const int per = m.n_expert / m.n_group;
        m.n_group_used = std::max(m.n_group_used, (k + per - 1) / per);
    }
    return {};
}

Result<std::unique_ptr<Model>> with_top_k(const Model& base, int k) {
    auto m = std::make_unique<Model>();
    m->config = base.config;
    MOE_TRY_VOID(override_top_k(m->config, k));
    m->token_embd = base.token_embd;
    m->output_norm = base.output_norm;
    m->output = base.output;
    m->layers = base.layers;  // views into base's mapping and owned vectors
    m->source = base.source;
    m->experts = base.experts;
    m->bound_names = base.bound_names;
    return m;
}

}  // namespace moe
