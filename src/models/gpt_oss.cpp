// gpt-oss: GGUF arch "gpt-oss", HF GptOssForCausalLM (models/gpt_oss).
// Attention sinks, sliding-window attention on even layers, biases on attention and experts,
// router with bias (top-k of logits, then softmax over the k), clamped SwiGLU, YaRN RoPE.
#include <cmath>

#include "models/common/bind.h"
#include "models/families.h"

namespace moe {

Result<void> load_gpt_oss(const ModelSource& src, Model& m) {
    ModelConfig& c = m.config;
    HParams hp(src, "gpt-oss");
    read_base_config(hp, src, c);
    AttentionConfig attn = read_attention_config(hp, c.n_embd, /*neox=*/true);
    attn.rope.yarn_truncate = false;  // gpt-oss config: "truncate": false
    if (attn.rope.yarn_factor > 1.0) attn.rope.attn_factor = 1.0 + 0.1 * std::log(attn.rope.yarn_factor);
    const int window = int(hp.opt_int("attention.sliding_window", 0, 0, 1 << 24));
    c.n_ff = int(hp.opt_int("feed_forward_length", 0, 0, 1 << 20));
    c.moe = read_moe_counts(hp, c.n_ff);
    c.moe.gating = Gating::SoftmaxAfterTopK;
    c.moe.act = Activation::SwiGLUClamped;
    if (hp.ok() && c.moe.n_expert == 0) hp.fail("missing metadata key 'gpt-oss.expert_count'");
    if (!hp.ok()) return make_error("{}", hp.error());
    c.attn.assign(size_t(c.n_layer), attn);
    for (int il = 0; il < c.n_layer; il += 2) c.attn[size_t(il)].sliding_window = window;

    return bind_standard_layers(src, m, {.attn = {.qkv_bias = true, .o_bias = true, .sinks = true},
                                          .moe = {.router_bias = true, .expert_bias = true},
                                          .ffn_norm = "post_attention_norm.weight"});
}

}  // namespace moe
