#include "models/expert_store.h"

#include "models/model.h"

namespace moe {

std::vector<ops::ExpertWeights> resident_expert_views(const Model& m, int il) {
    const LayerWeights& L = m.layers[size_t(il)];
    if (!L.is_moe) return {};
    const MoeWeights& w = L.moe;
    const int n_exp = m.config.moe.n_expert, n_ff = m.config.moe.n_ff_exp;
    const int64_t n_embd = m.config.n_embd;
    auto bias = [](const TensorView& b, int e, int64_t n) {
        return b.empty() ? nullptr : static_cast<const float*>(b.data) + int64_t(e) * n;
    };
    std::vector<ops::ExpertWeights> v(static_cast<size_t>(n_exp));  // [n_expert]
    for (int e = 0; e < n_exp; ++e)
        v[size_t(e)] = {w.gate_exps.slice(e),       w.up_exps.slice(e),
                        w.down_exps.slice(e),       bias(w.gate_exps_b, e, n_ff),
                        bias(w.up_exps_b, e, n_ff), bias(w.down_exps_b, e, n_embd)};
    return v;
}

ResidentExpertStore::ResidentExpertStore(const Model& m) {
    views_.resize(m.layers.size());
    for (int il = 0; il < int(m.layers.size()); ++il)
        views_[size_t(il)] = resident_expert_views(m, il);
}

}  // namespace moe
