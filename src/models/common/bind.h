// Tensor lists of the shared building blocks: the one place that says which tensors a standard
// attention, an MLA attention, a dense FFN and an MoE FFN have, with their shapes.
#pragma once

#include "models/loader.h"
#include "models/model.h"

namespace moe {

// Standard attention hyperparameters: heads, head size, RoPE (incl. YaRN keys) from "{arch}.*".
AttentionConfig read_attention_config(HParams& hp, int n_embd, bool neox);
// YaRN / rope-scaling keys into rc (no-op when the file has none).
void read_rope_scaling(HParams& hp, RopeConfig& rc);
// MoE hyperparameters common to all families (counts and widths).
MoeConfig read_moe_counts(HParams& hp, int64_t n_ff_default);

struct AttnTensors {
    bool qkv_bias = false, o_bias = false, sinks = false;
};
void bind_attention(TensorBinder& tb, int il, const AttentionConfig& a, int n_embd,
                    const AttnTensors& spec, AttentionWeights& w);
void bind_mla(TensorBinder& tb, int il, const MlaConfig& c, int n_embd, MlaWeights& w);

// Llama 3.x rope_freqs (per-frequency divisors, optional) into rc; values must be positive.
void bind_rope_freqs(TensorBinder& tb, RopeConfig& rc);

// suffix "" for dense layers ("ffn_gate"), "_shexp" for shared experts.
void bind_ffn(TensorBinder& tb, int il, int64_t n_ff, int n_embd, const char* suffix,
              FfnWeights& w);

struct MoeTensors {
    bool router_bias = false, expert_bias = false, shared_gate = false;
};
void bind_moe(TensorBinder& tb, int il, const MoeConfig& c, int n_embd, const MoeTensors& spec,
              MoeWeights& w);

// How a family lays out a standard (GQA attention) layer beyond its configs.
struct StandardLayerSpec {
    AttnTensors attn;
    MoeTensors moe;
    const char* ffn_norm = "ffn_norm.weight";  // gpt-oss names it post_attention_norm
    int n_leading_dense = 0;                     // DeepSeek: first layers use the dense FFN
};
// Binds the globals and every layer: attn_norm, attention (MLA when c.use_mla, else c.attn[il]),
// the FFN norm, and the MoE block when c.moe has experts (from layer spec.n_leading_dense on),
// else the dense FFN of width c.n_ff. (load_model then checks that every tensor was bound.)
Result<void> bind_standard_layers(const ModelSource& src, Model& m, const StandardLayerSpec& spec);

// token_embd, output_norm, output (tied to token_embd when absent).
void bind_globals(TensorBinder& tb, Model& m);

// Shape sanity shared by all families; returns the first problem found.
Result<void> validate_common(const ModelConfig& c);

}  // namespace moe

namespace moe {
// n_embd, n_layer, n_ctx_train, rms_eps, n_vocab (from token_embd) for any family.
void read_base_config(HParams& hp, const ModelSource& src, ModelConfig& c);
}  // namespace moe
