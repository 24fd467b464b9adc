// Llama (dense) and Mixtral: GGUF arch "llama"; Mixtral is "llama" with expert_count > 0.
// HF: LlamaForCausalLM, MixtralForCausalLM (transformers models/llama, models/mixtral).
// The upstream converter permutes q/k rows so RoPE rotates adjacent pairs (not NeoX halves).
// Mixtral routing: softmax over all experts, top-k, renormalise the k weights.
#include "models/common/bind.h"
#include "models/families.h"

namespace moe {

Result<void> load_llama(const ModelSource& src, Model& m) {
    ModelConfig& c = m.config;
    HParams hp(src, "llama");
    read_base_config(hp, src, c);
    const AttentionConfig attn = read_attention_config(hp, c.n_embd, /*neox=*/false);
    c.n_ff = int(hp.req_int("feed_forward_length", 1, 1 << 20));
    c.moe = read_moe_counts(hp, c.n_ff);
    c.moe.gating = Gating::Softmax;
    c.moe.norm_topk = true;
    if (!hp.ok()) return make_error("{}", hp.error());
    c.family = c.moe.n_expert > 0 ? "mixtral" : "llama";
    c.attn.assign(size_t(c.n_layer), attn);
    return bind_standard_layers(src, m, {});
}

}  // namespace moe
