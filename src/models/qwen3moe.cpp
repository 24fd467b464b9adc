// Qwen3-MoE: GGUF arch "qwen3moe", HF Qwen3MoeForCausalLM (models/qwen3_moe).
// Per-head RMSNorm on q and k before RoPE; softmax top-k renormalised; no shared expert.
#include "models/common/bind.h"
#include "models/families.h"

namespace moe {

Result<void> load_qwen3moe(const ModelSource& src, Model& m) {
    ModelConfig& c = m.config;
    HParams hp(src, "qwen3moe");
    read_base_config(hp, src, c);
    AttentionConfig attn = read_attention_config(hp, c.n_embd, /*neox=*/true);
    attn.qk_norm = QkNorm::PerHead;
    c.n_ff = int(hp.opt_int("feed_forward_length", 0, 0, 1 << 20));
    c.moe = read_moe_counts(hp, c.n_ff);
    c.moe.gating = Gating::Softmax;
    c.moe.norm_topk = true;
    if (hp.ok() && c.moe.n_expert == 0) hp.fail("missing metadata key 'qwen3moe.expert_count'");
    if (!hp.ok()) return make_error("{}", hp.error());
    c.attn.assign(size_t(c.n_layer), attn);
    return bind_standard_layers(src, m, {});
}

}  // namespace moe
