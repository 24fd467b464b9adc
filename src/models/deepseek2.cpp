// DeepSeek V2, V2-Lite, V3, R1: GGUF arch "deepseek2", HF DeepseekV2ForCausalLM /
// DeepseekV3ForCausalLM (models/deepseek_v2, models/deepseek_v3).
// Multi-head Latent Attention (q-LoRA optional), leading dense layers, shared experts, routing by
// softmax (V2) or sigmoid + selection bias (V3), group-limited top-k, optional renorm, scaling.
#include <cmath>

#include "models/common/bind.h"
#include "models/families.h"

namespace moe {

Result<void> load_deepseek2(const ModelSource& src, Model& m) {
    ModelConfig& c = m.config;
    HParams hp(src, "deepseek2");
    read_base_config(hp, src, c);
    c.use_mla = true;
    MlaConfig& a = c.mla;
    a.n_head = int(hp.req_int("attention.head_count", 1, 4096));
    a.q_lora_rank = int(hp.opt_int("attention.q_lora_rank", 0, 0, 1 << 20));
    a.kv_lora_rank = int(hp.req_int("attention.kv_lora_rank", 1, 1 << 20));
    a.qk_rope = int(hp.req_int("rope.dimension_count", 2, 4096));
    // Files from before the MLA split store q/k head sizes in key_length/value_length.
    const bool split = hp.has("attention.key_length_mla");
    const int qk =
        int(hp.req_int(split ? "attention.key_length_mla" : "attention.key_length", 1, 65536));
    a.v_head =
        int(hp.req_int(split ? "attention.value_length_mla" : "attention.value_length", 1, 65536));
    if (split && hp.ok()) {
        // The absorbed-MLA view: keys are latent + rope wide, values latent wide.
        const int64_t k_len =
            hp.opt_int("attention.key_length", a.kv_lora_rank + a.qk_rope, 1, 1 << 21);
        const int64_t v_len = hp.opt_int("attention.value_length", a.kv_lora_rank, 1, 1 << 21);
        if (hp.ok() && (k_len != a.kv_lora_rank + a.qk_rope || v_len != a.kv_lora_rank))
            hp.fail(
                fmt::format("attention.key_length = {} and value_length = {} must be "
                            "kv_lora_rank + rope.dimension_count = {} and kv_lora_rank = {}",
                            k_len, v_len, a.kv_lora_rank + a.qk_rope, a.kv_lora_rank));
    }
    a.qk_nope = qk - a.qk_rope;
    if (hp.ok() && a.qk_nope <= 0) hp.fail("MLA key length must exceed rope.dimension_count");
    a.rope.n_dims = a.qk_rope;
    a.rope.freq_base = hp.opt_positive("rope.freq_base", 10000.0);
    a.rope.neox = false;
    read_rope_scaling(hp, a.rope);
    a.scale = float(1.0 / std::sqrt(double(qk)));
    if (a.rope.yarn_factor > 1.0) {
        // HF: softmax_scale *= mscale(factor, mscale_all_dim)^2; the file stores
        // 0.1*mscale_all_dim.
        const double mul = hp.opt_float("rope.scaling.yarn_log_multiplier", 0.1);
        const double ms = 1.0 + mul * std::log(a.rope.yarn_factor);
        a.scale = float(a.scale * ms * ms);
    }

    c.n_ff = int(hp.req_int("feed_forward_length", 1, 1 << 20));
    const int n_dense = int(hp.opt_int("leading_dense_block_count", 0, 0, c.n_layer));
    c.moe = read_moe_counts(hp, c.n_ff);
    const int64_t gating = hp.opt_int("expert_gating_func", 1, 0, 2);
    c.moe.gating = gating == 2 ? Gating::Sigmoid : Gating::Softmax;
    c.moe.group_score = gating == 2 ? GroupScore::Top2Sum : GroupScore::Max;
    c.moe.norm_topk = hp.opt_bool("expert_weights_norm", false);
    c.moe.weights_scale = float(hp.opt_positive("expert_weights_scale", 1.0));
    c.moe.n_group = int(hp.opt_int("expert_group_count", 1, 1, 4096));
    c.moe.n_group_used = int(hp.opt_int("expert_group_used_count", 1, 1, 4096));
    c.moe.n_ff_shexp = int(hp.opt_int("expert_shared_count", 0, 0, 64)) * c.moe.n_ff_exp;
    if (!hp.ok()) return make_error("{}", hp.error());

    StandardLayerSpec spec;
    spec.n_leading_dense = n_dense;
    return bind_standard_layers(src, m, spec);
}

}  // namespace moe
