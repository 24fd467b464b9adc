// Qwen1.5-MoE / Qwen2-MoE: GGUF arch "qwen2moe", HF Qwen2MoeForCausalLM (models/qwen2_moe).
// QKV bias; softmax top-k without renormalisation; a shared expert scaled by sigmoid(x·w_gate).
#include "models/common/bind.h"
#include "models/families.h"

namespace moe {

Result<void> load_qwen2moe(const ModelSource& src, Model& m) {
    ModelConfig& c = m.config;
    HParams hp(src, "qwen2moe");
    read_base_config(hp, src, c);
    const AttentionConfig attn = read_attention_config(hp, c.n_embd, /*neox=*/true);
    c.n_ff = int(hp.opt_int("feed_forward_length", 0, 0, 1 << 20));
    c.moe = read_moe_counts(hp, c.n_ff);
    c.moe.gating = Gating::Softmax;
    c.moe.norm_topk = false;
    c.moe.n_ff_shexp = int(hp.opt_int("expert_shared_feed_forward_length", 0, 0, 1 << 20));
    if (hp.ok() && c.moe.n_expert == 0) hp.fail("missing metadata key 'qwen2moe.expert_count'");
    if (!hp.ok()) return make_error("{}", hp.error());
    c.attn.assign(size_t(c.n_layer), attn);

    TensorBinder tb(src, m);
    bind_globals(tb, m);
    m.layers.resize(size_t(c.n_layer));
    for (int il = 0; il < c.n_layer; ++il) {
        LayerWeights& L = m.layers[size_t(il)];
        L.attn_norm = tb.req_f32(blk(il, "attn_norm.weight"), {c.n_embd});
        bind_attention(tb, il, attn, c.n_embd, {.qkv_bias = true}, L.attn);
        L.ffn_norm = tb.req_f32(blk(il, "ffn_norm.weight"), {c.n_embd});
        L.is_moe = true;
        c.is_moe[size_t(il)] = 1;
        bind_moe(tb, il, c.moe, c.n_embd, {.shared_gate = true}, L.moe);
    }
    if (!tb.ok()) return make_error("{}", tb.error());
    return {};
}

}  // namespace moe
