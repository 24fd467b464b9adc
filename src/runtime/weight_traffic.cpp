#include "runtime/weight_traffic.h"

#include <algorithm>

namespace moe {

namespace {
double bytes(const TensorView& t) {
    return t.empty() ? 0.0 : double(t.nbytes());
}
double bytes(const FfnWeights& f) {
    return bytes(f.gate) + bytes(f.up) + bytes(f.down);
}
}  // namespace

WeightTraffic weight_traffic(const Model& m) {
    WeightTraffic w;
    // The embedding table is not counted: a step reads only its tokens' rows.
    w.dense_bytes = bytes(m.output);
    for (const LayerWeights& l : m.layers) {
        const AttentionWeights& a = l.attn;
        const MlaWeights& mla = l.mla;
        w.dense_bytes += bytes(a.wq) + bytes(a.wk) + bytes(a.wv) + bytes(a.wo);
        w.dense_bytes += bytes(mla.wq) + bytes(mla.wq_a) + bytes(mla.wq_b) + bytes(mla.wkv_a) +
                         bytes(mla.wk_b) + bytes(mla.wv_b) + bytes(mla.wo);
        w.dense_bytes += bytes(l.ffn);
        if (!l.is_moe) continue;
        const MoeWeights& e = l.moe;
        w.dense_bytes += bytes(e.router) + bytes(e.shared) + bytes(e.shared_gate);
        const int n_expert = std::max(1, m.config.moe.n_expert);
        w.expert_bytes.push_back((bytes(e.gate_exps) + bytes(e.up_exps) + bytes(e.down_exps)) /
                                 n_expert);
    }
    return w;
}

}  // namespace moe
