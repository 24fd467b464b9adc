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
    return bind_standard_layers(src, m, {.attn = {.qkv_bias = true}, .moe = {.shared_gate = true}});
}

}  // namespace moe
