// Parameter accounting for `inspect`: total and active parameters per token, broken down by role,
// storage by tensor type, and a resident-memory estimate (weights + KV cache).
//
// Tensors are classified by their GGUF names (one table in params.cpp). "Active" counts every
// tensor except the routed experts, plus n_expert_used / n_expert of the routed experts of MoE
// layers. Publishers differ on the token-embedding table (a lookup, not a matmul): both
// conventions are computed; the headline follows the publisher of the architecture so that it is
// comparable with the model card (OpenAI's gpt-oss and DeepSeek exclude it, Mistral, Qwen and
// AllenAI include it). With tied embeddings the table is also the output head, so it is active
// under both conventions.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "core/sysinfo.h"
#include "core/tensor.h"
#include "formats/model_source.h"
#include "models/kv_layout.h"
#include "models/model.h"

namespace moe {

enum class ParamRole : int {
    Embedding,      // token_embd
    Output,         // output (the LM head)
    Attention,      // q/k/v/o projections, MLA low-rank projections
    RoutedExperts,  // *_exps (each token uses n_expert_used of n_expert)
    SharedExperts,  // *_shexp (every token)
    DenseFfn,       // ffn_gate/up/down of dense layers
    Small,          // norms, routers, biases, attention sinks, anything unrecognised
};
constexpr int kParamRoles = 7;
std::string_view role_name(ParamRole r);  // "embeddings", "routed experts", ...
std::string_view role_key(ParamRole r);   // JSON key: "embeddings", "routed_experts", ...

// The role of a tensor from its GGUF name ("blk.3.ffn_up_exps.weight" -> RoutedExperts).
ParamRole classify_tensor(std::string_view name);
// The block index of "blk.N.*", or -1 for global tensors.
int tensor_layer(std::string_view name);

// Whether the publisher of an architecture counts the token-embedding table as active.
bool publisher_counts_embedding(std::string_view arch);

struct CountedTensor {
    std::string name;
    Shape shape;
    DType dtype = DType::F32;
    int64_t numel = 0;
    uint64_t bytes = 0;
    ParamRole role = ParamRole::Small;
    int layer = -1;
};

struct RoleCount {
    int64_t total = 0;
    int64_t active = 0;  // active with the embedding counted (see ParamReport)
    uint64_t bytes = 0;
};

struct TypeCount {
    DType dtype = DType::F32;
    int n_tensors = 0;
    int64_t numel = 0;
    uint64_t bytes = 0;
    double bits_per_weight() const { return numel ? double(bytes) * 8.0 / double(numel) : 0.0; }
};

struct ParamReport {
    std::vector<CountedTensor> tensors;
    std::array<RoleCount, kParamRoles> roles{};
    std::vector<TypeCount> types;  // by dtype, most bytes first
    int64_t total = 0;
    int64_t active_incl_embd = 0;  // embedding table counted as active
    int64_t active_excl_embd = 0;  // embedding lookup not counted (unless tied to the output)
    bool headline_includes_embd = true;
    bool tied_embeddings = false;
    uint64_t weight_bytes = 0;
    int64_t active() const { return headline_includes_embd ? active_incl_embd : active_excl_embd; }
    const RoleCount& role(ParamRole r) const { return roles[size_t(r)]; }
    double bits_per_weight() const {
        return total ? double(weight_bytes) * 8.0 / double(total) : 0;
    }
};

// Counts a list of tensors (name, shape, dtype) of a model with configuration c.
ParamReport count_params(const ModelConfig& c, std::vector<CountedTensor> tensors);

// Every tensor of a file or folder, with its stored type.
ParamReport count_source_params(const ModelSource& src, const ModelConfig& c);

// How a planned model (a preset) would be stored: matrices in `matrix_type`, routed experts in
// `expert_type` when set, 1-D tensors and biases in f32 (as the converters write them). A matrix
// whose rows do not split into blocks of the type falls back to f16.
struct StoragePolicy {
    DType matrix_type = DType::BF16;
    std::optional<DType> expert_type;
    // Per-tensor types that override the two above (a quantizer's mix, e.g. what `synth --type
    // q4_k_m` writes: Q6_K output and ffn_down bumps, f32 routers).
    std::unordered_map<std::string, DType> per_tensor;
};
// The published checkpoint's storage of an architecture: bf16, with gpt-oss's routed experts in
// MXFP4 (as released).
StoragePolicy published_storage(std::string_view arch);

// Counts the tensors a family loader planned (Model::plan). Optional tensors are included when
// the model has them: output.weight unless tied_embeddings, exp_probs_b only with sigmoid gating.
Result<ParamReport> count_planned_params(const Model& m, bool tied_embeddings,
                                         const StoragePolicy& policy);

// Bytes of the engine's KV cache for n_ctx positions of one sequence, rows stored as t: standard
// attention keeps K and V (n_kv_head * head_dim each) per layer, MLA the latent (kv_lora + rope).
// Sums models/kv_layout.h's per-layer count, the one the cache allocates with.
uint64_t kv_cache_bytes(const ModelConfig& c, int64_t n_ctx, KvTypes t);
uint64_t kv_bytes_per_token(const ModelConfig& c, KvTypes t);

}  // namespace moe
