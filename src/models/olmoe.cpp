// OLMoE: GGUF arch "olmoe", HF OlmoeForCausalLM (models/olmoe).
// RMSNorm over the whole q and k projections (not per head); softmax top-k, no renormalisation.
#include "models/common/bind.h"
#include "models/families.h"

namespace moe {

Result<void> load_olmoe(const ModelSource& src, Model& m) {
    ModelConfig& c = m.config;
    HParams hp(src, "olmoe");
    read_base_config(hp, src, c);
    AttentionConfig attn = read_attention_config(hp, c.n_embd, /*neox=*/true);
    attn.qk_norm = QkNorm::Whole;
    c.n_ff = int(hp.req_int("feed_forward_length", 1, 1 << 20));
    c.moe = read_moe_counts(hp, c.n_ff);
    c.moe.gating = Gating::Softmax;
    c.moe.norm_topk = false;
    if (hp.ok() && c.moe.n_expert == 0) hp.fail("missing metadata key 'olmoe.expert_count'");
    if (!hp.ok()) return make_error("{}", hp.error());
    c.attn.assign(size_t(c.n_layer), attn);
    return bind_standard_layers(src, m, {});
}

}  // namespace moe
