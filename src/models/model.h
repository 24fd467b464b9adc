// The model: configuration and weights of a decoder-only transformer whose layers combine one
// attention variant (standard GQA or DeepSeek MLA) with one FFN variant (dense SwiGLU or the
// shared MoE block). Families differ only in the data they put here (see registry.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/tensor.h"
#include "formats/model_source.h"
#include "models/common/rope.h"

namespace moe {

class ExpertStore;  // models/expert_store.h

// An f32 vector owned by the model (norm weights, biases, sinks); empty() = absent.
struct F32Vec {
    const float* p = nullptr;
    int64_t n = 0;
    bool empty() const { return p == nullptr; }
};

enum class QkNorm { None, PerHead, Whole };  // Qwen3: per head; OLMoE: over the whole projection

struct AttentionConfig {
    int n_head = 0, n_head_kv = 0, head_dim = 0;
    QkNorm qk_norm = QkNorm::None;
    int sliding_window = 0;  // 0: full attention; else a key is seen while pos_q - pos_k < window
    float scale = 0.0f;      // score scale, usually 1/sqrt(head_dim)
    RopeConfig rope;
};

struct AttentionWeights {
    TensorView wq, wk, wv, wo;  // [n_head*hd, n_embd], [n_kv*hd, n_embd] x2, [n_embd, n_head*hd]
    F32Vec bq, bk, bv, bo;      // optional biases
    F32Vec q_norm, k_norm;      // [hd] (PerHead) or [n_head*hd] / [n_kv*hd] (Whole)
    F32Vec sinks;               // [n_head] attention-sink logits (gpt-oss)
};

// DeepSeek Multi-head Latent Attention. The KV cache holds the compressed latent.
struct MlaConfig {
    int n_head = 0;
    int q_lora_rank = 0;  // 0: q is projected directly (V2-Lite)
    int kv_lora_rank = 0, qk_nope = 0, qk_rope = 0, v_head = 0;
    float scale = 0.0f;  // 1/sqrt(qk_nope + qk_rope), times the YaRN mscale^2 where used
    RopeConfig rope;
};

struct MlaWeights {
    TensorView wq;          // [n_head*(nope+rope), n_embd] (no q-LoRA)
    TensorView wq_a, wq_b;  // [q_lora, n_embd], [n_head*(nope+rope), q_lora]
    F32Vec q_a_norm;        // [q_lora]
    TensorView wkv_a;       // [kv_lora + rope, n_embd]
    F32Vec kv_a_norm;       // [kv_lora]
    TensorView wk_b;        // [n_head, kv_lora, nope]: absorbs q_nope into latent space
    TensorView wv_b;        // [n_head, v_head, kv_lora]
    TensorView wo;          // [n_embd, n_head*v_head]
};

enum class Activation { SwiGLU, SwiGLUClamped };  // SwiGLUClamped: gpt-oss

struct FfnWeights {             // dense SwiGLU FFN, also a shared expert
    TensorView gate, up, down;  // [n_ff, n_embd] x2, [n_embd, n_ff]
    bool empty() const { return gate.empty(); }
};

enum class Gating { Softmax, Sigmoid, SoftmaxAfterTopK };
enum class GroupScore { Max, Top2Sum };  // DeepSeek-V2 group_limited_greedy / V3 noaux_tc

struct MoeConfig {
    int n_expert = 0, n_expert_used = 0, n_ff_exp = 0;
    Gating gating = Gating::Softmax;
    bool norm_topk = false;      // renormalise the k selected weights to sum 1
    float weights_scale = 1.0f;  // routed_scaling_factor
    int n_group = 1, n_group_used = 1;
    GroupScore group_score = GroupScore::Top2Sum;
    Activation act = Activation::SwiGLU;
    float swiglu_alpha = 1.702f, swiglu_limit = 7.0f;  // SwiGLUClamped only
    int n_ff_shexp = 0;                                // shared expert width (0: none)
    // What the file specifies when n_expert_used / n_group_used were overridden (--top-k,
    // models/top_k.h); 0: not overridden. Reports read them through native_top_k().
    int n_expert_used_native = 0, n_group_used_native = 0;
};

struct MoeWeights {
    TensorView router;                  // [n_expert, n_embd]
    F32Vec router_b;                    // [n_expert] (gpt-oss)
    F32Vec selection_bias;              // [n_expert] affects choice, not weights (DeepSeek-V3)
    TensorView gate_exps, up_exps;      // [n_expert, n_ff_exp, n_embd]
    TensorView down_exps;               // [n_expert, n_embd, n_ff_exp]
    TensorView gate_exps_b, up_exps_b;  // [n_expert, n_ff_exp] f32 (gpt-oss)
    TensorView down_exps_b;             // [n_expert, n_embd]
    FfnWeights shared;                  // shared expert(s), run on every token
    TensorView shared_gate;             // [1, n_embd]: sigmoid gate of the shared expert
};

struct LayerWeights {
    F32Vec attn_norm, ffn_norm;  // [n_embd]
    AttentionWeights attn;
    MlaWeights mla;
    bool is_moe = false;
    FfnWeights ffn;  // dense layers
    MoeWeights moe;
};

struct ModelConfig {
    std::string arch;    // GGUF general.architecture
    std::string family;  // registry name, e.g. "mixtral"
    std::string name;    // general.name
    int n_vocab = 0, n_embd = 0, n_layer = 0, n_ctx_train = 0;
    float rms_eps = 1e-6f;
    bool use_mla = false;
    std::vector<AttentionConfig> attn;  // per layer (sliding window may alternate)
    MlaConfig mla;
    MoeConfig moe;
    int n_ff = 0;                 // dense FFN width
    std::vector<uint8_t> is_moe;  // [n_layer]
    int n_moe_layers() const {
        int n = 0;
        for (auto m : is_moe) n += m;
        return n;
    }
};

// Replaces the MoE block's expert selection for T tokens of MoE layer `layer` (its index among
// all layers): reads the router logits [T, n_expert] (router bias included) and writes the chosen
// experts ids [T, n_expert_used] and their final weights [T, n_expert_used].
using RouteOverride =
    std::function<void(int layer, int64_t T, const float* logits, int32_t* ids, float* weights)>;

// A tensor a family loader asks for, recorded when loading in plan mode (metadata only).
struct PlannedTensor {
    std::string name;
    Shape shape;  // outermost first
    bool required = true;
};

class Model {
  public:
    ModelConfig config;
    TensorView token_embd;  // [n_vocab, n_embd]
    F32Vec output_norm;     // [n_embd]
    TensorView output;      // [n_vocab, n_embd]
    std::vector<LayerWeights> layers;
    std::shared_ptr<ModelSource> source;  // keeps the mapping alive
    // Where the MoE block gets routed experts from (models/expert_store.h): the resident store
    // load_model sets, or a budgeted cache (models/expert_cache.h). Shared by model views.
    std::shared_ptr<ExpertStore> experts;
    // Plan mode: when non-null, missing tensors are recorded here instead of failing, so the
    // family's own tensor list (names, shapes) is known from metadata alone (synth, inspect).
    std::unique_ptr<std::vector<PlannedTensor>> plan;
    // Names of the source tensors the loader bound: check_tensor_use() compares them with the
    // file's list, so tensors the metadata does not account for are reported.
    std::vector<std::string> bound_names;
    // Test seam, empty in normal use (one branch per MoE layer): a test that checks the routing
    // rules against its own selection sets it; everything after selection stays the engine's.
    RouteOverride route_override;

    // Copies a 1-D (or small) tensor to an owned f32 vector.
    F32Vec own_f32(const TensorView& t);
    // Owned f32 copy of any tensor (used for expert biases).
    TensorView own_f32_tensor(const TensorView& t);
    // Takes ownership of weights built at load time (e.g. DeepSeek's split attn_kv_b).
    TensorView own_bytes(DType t, Shape shape, std::vector<uint8_t> bytes);

  private:
    std::vector<std::unique_ptr<std::vector<float>>> owned_;
    std::vector<std::unique_ptr<std::vector<uint8_t>>> owned_bytes_;
};

// Opens a model file or folder and builds the model of its family.
Result<std::unique_ptr<Model>> load_model(const std::string& path);
Result<std::unique_ptr<Model>> load_model(std::shared_ptr<ModelSource> src);
// Runs the family loader on metadata alone: the returned model has a config and `plan` (the
// tensors the family expects, in binding order) but no weights.
Result<std::unique_ptr<Model>> plan_model(std::shared_ptr<ModelSource> src);

}  // namespace moe
