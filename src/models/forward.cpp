#include "models/forward.h"

#include "kernels/ops.h"
#include "models/common/attention.h"
#include "models/common/moe_block.h"

namespace moe {
namespace {

Result<void> check_batch(const Model& m, const Batch& b, const KvCache& kv) {
    if (b.size() == 0) return make_error("empty batch");
    if (b.pos.size() != b.token.size() || b.seq.size() != b.token.size() ||
        b.logits.size() != b.token.size())
        return make_error("malformed batch: field lengths differ");
    for (int64_t t = 0; t < b.size(); ++t) {
        const int32_t tok = b.token[size_t(t)];
        if (tok < 0 || tok >= m.config.n_vocab)
            return make_error("token id {} at index {} is out of range [0, {})", tok, t,
                              m.config.n_vocab);
        if (b.pos[size_t(t)] < 0 || b.pos[size_t(t)] >= kv.n_ctx())
            return make_error("position {} is outside the context of {} tokens", b.pos[size_t(t)],
                              kv.n_ctx());
        if (b.seq[size_t(t)] < 0 || b.seq[size_t(t)] >= kv.n_seq())
            return make_error("sequence id {} is out of range [0, {})", b.seq[size_t(t)],
                              kv.n_seq());
        if (!kv.holds(b.seq[size_t(t)], b.pos[size_t(t)]))
            return make_error("position {} of sequence {} has no KV page (the pool is full?)",
                              b.pos[size_t(t)], b.seq[size_t(t)]);
    }
    return {};
}

bool c_has_moe(const Model& m) {
    return m.config.n_moe_layers() > 0;
}

}  // namespace

Result<void> forward(const Model& m, const Batch& b, KvCache& kv, ThreadPool& pool,
                     std::vector<float>& logits, RouterTrace* trace) {
    MOE_TRY_VOID(check_batch(m, b, kv));
    if (!m.experts && c_has_moe(m)) return make_error("the model has no expert store");
    const ModelConfig& c = m.config;
    const int64_t T = b.size();
    const int n_embd = c.n_embd;

    std::vector<float> x(size_t(T * n_embd));    // [T, n_embd] residual stream
    std::vector<float> h(size_t(T * n_embd));    // [T, n_embd] normalized input of a sublayer
    std::vector<float> out(size_t(T * n_embd));  // [T, n_embd] sublayer output
    for (int64_t t = 0; t < T; ++t)
        ops::get_row(m.token_embd, b.token[size_t(t)], x.data() + t * n_embd);

    if (trace) {
        trace->n_expert = c.moe.n_expert;
        trace->n_expert_used = c.moe.n_expert_used;
        trace->logits.clear(), trace->selected.clear(), trace->weights.clear();
    }

    const bool predict = m.experts && m.experts->wants_prediction();
    for (int il = 0; il < c.n_layer; ++il) {
        const LayerWeights& L = m.layers[size_t(il)];
        ops::rms_norm(x.data(), T, n_embd, L.attn_norm.p, c.rms_eps, h.data());
        if (c.use_mla)
            mla_forward(c.mla, L.mla, il, h.data(), b, n_embd, c.rms_eps, kv, pool, out.data());
        else
            attention_forward(c.attn[size_t(il)], L.attn, il, h.data(), b, n_embd, c.rms_eps, kv,
                              pool, out.data());
        ops::add(x.data(), out.data(), T * n_embd);

        ops::rms_norm(x.data(), T, n_embd, L.ffn_norm.p, c.rms_eps, h.data());
        if (L.is_moe) {
            // An expert-parallel store also says which experts are this process's own.
            auto* shard = dynamic_cast<ExpertShard*>(m.experts.get());
            float* rl = nullptr;
            int32_t* ids = nullptr;
            float* wts = nullptr;
            if (trace) {
                const size_t nl = trace->logits.size(), ns = trace->selected.size();
                if (trace->with_logits) trace->logits.resize(nl + size_t(T * c.moe.n_expert));
                trace->selected.resize(ns + size_t(T * c.moe.n_expert_used));
                trace->weights.resize(ns + size_t(T * c.moe.n_expert_used));
                if (trace->with_logits) rl = trace->logits.data() + nl;
                ids = trace->selected.data() + ns;
                wts = trace->weights.data() + ns;
            }
            MOE_TRY_VOID(moe_forward(c.moe, L.moe, il, *m.experts, h.data(), T, n_embd, pool,
                                     out.data(), rl, ids, wts, &m.route_override, shard));
        } else {
            ffn_forward(L.ffn, h.data(), T, pool, out.data());
        }
        ops::add(x.data(), out.data(), T * n_embd);

        // Speculative prefetch: layer l+1's router on layer l's output (h is free until the
        // next layer's attention norm overwrites it), so its reads overlap that attention.
        if (predict && il + 1 < c.n_layer && m.layers[size_t(il + 1)].is_moe) {
            const LayerWeights& N = m.layers[size_t(il + 1)];
            ops::rms_norm(x.data(), T, n_embd, N.ffn_norm.p, c.rms_eps, h.data());
            m.experts->prefetch(il + 1, predict_experts(c.moe, N.moe, h.data(), T, pool));
        }
    }

    // Output head only for the rows that want logits.
    const int64_t n_out = b.n_outputs();
    std::vector<float> xo(size_t(n_out * n_embd));  // [n_out, n_embd]
    for (int64_t t = 0, o = 0; t < T; ++t)
        if (b.logits[size_t(t)])
            std::copy_n(x.data() + t * n_embd, n_embd, xo.data() + (o++) * n_embd);
    ops::rms_norm(xo.data(), n_out, n_embd, m.output_norm.p, c.rms_eps, xo.data());
    logits.resize(size_t(n_out * c.n_vocab));
    ops::matmul(xo.data(), n_out, m.output, logits.data(), pool);
    return {};
}

}  // namespace moe
