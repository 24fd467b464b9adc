#include "formats/hf_families.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace moe::hf {

// ---------------------------------------------------------------------------------------------
// Config

const nlohmann::json* Config::find(const nlohmann::json& obj, std::string_view key) const {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(std::string(key));
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

bool Config::has(std::string_view key) const {
    return find(j_, key) != nullptr;
}

std::optional<int64_t> Config::to_int(const nlohmann::json* v, std::string_view key) {
    if (!v) return std::nullopt;
    if (v->is_number_integer()) return v->get<int64_t>();
    // Some configs write integral values as floats ("max_position_embeddings": 4096.0).
    if (v->is_number_float()) {
        const double d = v->get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return int64_t(d);
    }
    fail(fmt::format("config key '{}' should be an integer, got {}", key, v->dump()));
    return std::nullopt;
}

std::optional<double> Config::to_float(const nlohmann::json* v, std::string_view key) {
    if (!v) return std::nullopt;
    if (v->is_number()) return v->get<double>();
    fail(fmt::format("config key '{}' should be a number, got {}", key, v->dump()));
    return std::nullopt;
}

std::optional<std::string> Config::to_string(const nlohmann::json* v, std::string_view key) {
    if (!v) return std::nullopt;
    if (v->is_string()) return v->get<std::string>();
    fail(fmt::format("config key '{}' should be a string, got {}", key, v->dump()));
    return std::nullopt;
}

std::optional<int64_t> Config::get_int(std::string_view key) {
    return to_int(find(j_, key), key);
}
std::optional<double> Config::get_float(std::string_view key) {
    return to_float(find(j_, key), key);
}
std::optional<bool> Config::get_bool(std::string_view key) {
    const nlohmann::json* v = find(j_, key);
    if (!v) return std::nullopt;
    if (v->is_boolean()) return v->get<bool>();
    fail(fmt::format("config key '{}' should be a boolean, got {}", key, v->dump()));
    return std::nullopt;
}
std::optional<std::string> Config::get_string(std::string_view key) {
    return to_string(find(j_, key), key);
}

std::optional<int64_t> Config::first_int(std::initializer_list<std::string_view> keys) {
    for (auto k : keys)
        if (has(k)) return get_int(k);
    return std::nullopt;
}
std::optional<double> Config::first_float(std::initializer_list<std::string_view> keys) {
    for (auto k : keys)
        if (has(k)) return get_float(k);
    return std::nullopt;
}
std::optional<std::string> Config::first_string(std::initializer_list<std::string_view> keys) {
    for (auto k : keys)
        if (has(k)) return get_string(k);
    return std::nullopt;
}

const nlohmann::json* Config::rope_find(std::string_view key) const {
    for (const char* group : {"rope_parameters", "rope_scaling"})
        if (const nlohmann::json* g = find(j_, group))
            if (const nlohmann::json* v = find(*g, key)) return v;
    return find(j_, key);
}
std::optional<double> Config::rope_float(std::string_view key) {
    return to_float(rope_find(key), key);
}
std::optional<int64_t> Config::rope_int(std::string_view key) {
    return to_int(rope_find(key), key);
}
std::optional<std::string> Config::rope_string(std::string_view key) {
    return to_string(rope_find(key), key);
}

// ---------------------------------------------------------------------------------------------
// Meta

std::string Meta::full(std::string_view key) const {
    if (key.starts_with("general.")) return std::string(key);
    return arch_ + "." + std::string(key);
}

void Meta::set(const std::string& full_key, gguf::Value v) {
    for (auto& [k, old] : kv_)
        if (k == full_key) {
            old = std::move(v);
            return;
        }
    kv_.emplace_back(full_key, std::move(v));
}

void Meta::u32(std::string_view key, std::optional<int64_t> v) {
    if (!v) return;
    if (*v < 0 || *v > int64_t(std::numeric_limits<uint32_t>::max())) {
        if (error_.empty())
            error_ = fmt::format("value {} for '{}' does not fit an unsigned 32-bit integer", *v,
                                 full(key));
        return;
    }
    set(full(key), gguf::Value{gguf::ValueType::U32, uint64_t(*v)});
}

void Meta::f32(std::string_view key, std::optional<double> v) {
    if (!v) return;
    // Stored the way a GGUF reader would see an f32: rounded to float, widened back.
    set(full(key), gguf::Value{gguf::ValueType::F32, double(float(*v))});
}

void Meta::boolean(std::string_view key, std::optional<bool> v) {
    if (!v) return;
    set(full(key), gguf::Value{gguf::ValueType::BOOL, *v});
}

void Meta::str(std::string_view key, std::optional<std::string> v) {
    if (!v) return;
    set(full(key), gguf::Value{gguf::ValueType::STRING, std::move(*v)});
}

void Meta::erase(std::string_view key) {
    const std::string k = full(key);
    std::erase_if(kv_, [&](const auto& e) { return e.first == k; });
}

// ---------------------------------------------------------------------------------------------
// Hyperparameters

namespace {

enum GatingFunc : int64_t { kGatingSoftmax = 1, kGatingSigmoid = 2 };

std::optional<int64_t> gating_func(Config& cfg, const std::optional<std::string>& f) {
    if (!f) return std::nullopt;
    if (*f == "softmax") return kGatingSoftmax;
    if (*f == "sigmoid") return kGatingSigmoid;
    // Unknown scoring functions are left out; the model code reports them if it needs one.
    return std::nullopt;
}

void rope_scaling(Config& cfg, Meta& m) {
    auto type = cfg.rope_string("rope_type");
    if (!type) type = cfg.rope_string("type");
    if (!type || *type == "default") return;
    if (*type == "llama3") {
        // The upstream converter writes these as a rope_freqs tensor; the loader computes the
        // same divisors from the keys (models/common/rope.cpp).
        m.str("rope.scaling.type", "llama3");
        m.f32("rope.scaling.factor", cfg.rope_float("factor"));
        m.f32("rope.scaling.low_freq_factor", cfg.rope_float("low_freq_factor"));
        m.f32("rope.scaling.high_freq_factor", cfg.rope_float("high_freq_factor"));
        m.u32("rope.scaling.original_context_length",
              cfg.rope_int("original_max_position_embeddings"));
    } else if (*type == "linear") {
        m.str("rope.scaling.type", "linear");
        m.f32("rope.scaling.factor", cfg.rope_float("factor"));
    } else if (*type == "yarn") {
        m.str("rope.scaling.type", "yarn");
        m.f32("rope.scaling.factor", cfg.rope_float("factor"));
        m.u32("rope.scaling.original_context_length",
              cfg.rope_int("original_max_position_embeddings"));
        m.f32("rope.scaling.yarn_ext_factor", cfg.rope_float("extrapolation_factor"));
        m.f32("rope.scaling.yarn_attn_factor", cfg.rope_float("attention_factor"));
        m.f32("rope.scaling.yarn_beta_fast", cfg.rope_float("beta_fast"));
        m.f32("rope.scaling.yarn_beta_slow", cfg.rope_float("beta_slow"));
    } else {
        // Ignoring a scaling would silently give wrong logits at every position.
        m.fail(fmt::format("rope scaling type '{}' is not supported (supported: yarn, llama3)",
                           *type));
    }
}

void llama_hparams(Config& cfg, Meta& m) {
    m.u32("vocab_size", cfg.get_int("vocab_size"));
    auto head_dim = cfg.get_int("head_dim");
    if (!head_dim) {
        auto n_embd = cfg.get_int("hidden_size");
        auto n_head = cfg.get_int("num_attention_heads");
        if (n_embd && n_head && *n_head > 0) head_dim = *n_embd / *n_head;
    }
    m.u32("rope.dimension_count", head_dim);
}

void qwen2moe_hparams(Config& cfg, Meta& m) {
    m.u32("expert_feed_forward_length", cfg.get_int("moe_intermediate_size"));
    m.u32("expert_shared_feed_forward_length", cfg.get_int("shared_expert_intermediate_size"));
}

void qwen3moe_hparams(Config& cfg, Meta& m) {
    m.u32("expert_feed_forward_length", cfg.get_int("moe_intermediate_size"));
    m.u32("expert_shared_feed_forward_length", cfg.get_int("shared_expert_intermediate_size"));
}

void olmoe_hparams(Config& cfg, Meta& m) {
    // The upstream converter writes a fixed 1e-5 for OLMoE whatever config.json says.
    m.f32("attention.layer_norm_rms_epsilon", 1e-5);
    if (auto clip = cfg.get_float("clip_qkv")) m.f32("attention.clamp_kqv", clip);
}

void deepseek_hparams(Config& cfg, Meta& m, const char* default_scoring) {
    // MLA is stored as MQA over the compressed latent: one KV head of kv_lora + rope width.
    m.u32("attention.head_count_kv", 1);
    m.u32("leading_dense_block_count", cfg.get_int("first_k_dense_replace"));
    m.u32("vocab_size", cfg.get_int("vocab_size"));
    m.u32("attention.q_lora_rank", cfg.get_int("q_lora_rank"));
    const auto kv_lora = cfg.get_int("kv_lora_rank");
    const auto rope = cfg.get_int("qk_rope_head_dim");
    const auto nope = cfg.get_int("qk_nope_head_dim");
    const auto v_dim = cfg.get_int("v_head_dim");
    m.u32("attention.kv_lora_rank", kv_lora);
    if (kv_lora && rope) m.u32("attention.key_length", *kv_lora + *rope);
    m.u32("attention.value_length", kv_lora);
    if (nope && rope) m.u32("attention.key_length_mla", *nope + *rope);
    m.u32("attention.value_length_mla", v_dim);
    m.u32("expert_feed_forward_length", cfg.get_int("moe_intermediate_size"));
    m.u32("expert_count", cfg.get_int("n_routed_experts"));
    m.u32("expert_shared_count", cfg.get_int("n_shared_experts"));
    m.f32("expert_weights_scale", cfg.get_float("routed_scaling_factor"));
    if (cfg.get_bool("norm_topk_prob").value_or(false)) m.boolean("expert_weights_norm", true);
    const std::string scoring = cfg.get_string("scoring_func").value_or(default_scoring);
    m.u32("expert_gating_func", gating_func(cfg, scoring));
    m.u32("rope.dimension_count", rope);
    // DeepSeek's YaRN also scales attention by 0.1 * mscale_all_dim (log multiplier).
    if (auto mscale = cfg.rope_float("mscale_all_dim");
        mscale &&
        cfg.rope_string("rope_type").value_or(cfg.rope_string("type").value_or("")) == "yarn")
        m.f32("rope.scaling.yarn_log_multiplier", 0.1 * *mscale);
}

void deepseek2_hparams(Config& cfg, Meta& m) {
    deepseek_hparams(cfg, m, "softmax");
}
void deepseek3_hparams(Config& cfg, Meta& m) {
    deepseek_hparams(cfg, m, "sigmoid");
}

void gptoss_hparams(Config& cfg, Meta& m) {
    m.u32("attention.sliding_window", cfg.get_int("sliding_window"));
    m.u32("expert_feed_forward_length", cfg.get_int("intermediate_size"));
}

// ---------------------------------------------------------------------------------------------
// Tensor name tables

constexpr TensorRule kGlobal[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

constexpr TensorRule kNorms[] = {
    {"model.layers.{i}.input_layernorm.weight", "blk.{i}.attn_norm.weight"},
    {"model.layers.{i}.post_attention_layernorm.weight", "blk.{i}.ffn_norm.weight"},
};

constexpr TensorRule kAttn[] = {
    {"model.layers.{i}.self_attn.q_proj.weight", "blk.{i}.attn_q.weight"},
    {"model.layers.{i}.self_attn.q_proj.bias", "blk.{i}.attn_q.bias"},
    {"model.layers.{i}.self_attn.k_proj.weight", "blk.{i}.attn_k.weight"},
    {"model.layers.{i}.self_attn.k_proj.bias", "blk.{i}.attn_k.bias"},
    {"model.layers.{i}.self_attn.v_proj.weight", "blk.{i}.attn_v.weight"},
    {"model.layers.{i}.self_attn.v_proj.bias", "blk.{i}.attn_v.bias"},
    {"model.layers.{i}.self_attn.o_proj.weight", "blk.{i}.attn_output.weight"},
    {"model.layers.{i}.self_attn.o_proj.bias", "blk.{i}.attn_output.bias"},
};

// Llama/Mistral/Mixtral: q and k rows are permuted from HF's rotate-half RoPE layout to GGUF's.
constexpr TensorRule kAttnLlama[] = {
    {"model.layers.{i}.self_attn.q_proj.weight", "blk.{i}.attn_q.weight", Op::PermuteQ},
    {"model.layers.{i}.self_attn.q_proj.bias", "blk.{i}.attn_q.bias", Op::PermuteQ},
    {"model.layers.{i}.self_attn.k_proj.weight", "blk.{i}.attn_k.weight", Op::PermuteK},
    {"model.layers.{i}.self_attn.k_proj.bias", "blk.{i}.attn_k.bias", Op::PermuteK},
    {"model.layers.{i}.self_attn.v_proj.weight", "blk.{i}.attn_v.weight"},
    {"model.layers.{i}.self_attn.v_proj.bias", "blk.{i}.attn_v.bias"},
    {"model.layers.{i}.self_attn.o_proj.weight", "blk.{i}.attn_output.weight"},
    {"model.layers.{i}.self_attn.o_proj.bias", "blk.{i}.attn_output.bias"},
};

constexpr TensorRule kQkNorm[] = {
    {"model.layers.{i}.self_attn.q_norm.weight", "blk.{i}.attn_q_norm.weight"},
    {"model.layers.{i}.self_attn.k_norm.weight", "blk.{i}.attn_k_norm.weight"},
};

constexpr TensorRule kDenseMlp[] = {
    {"model.layers.{i}.mlp.gate_proj.weight", "blk.{i}.ffn_gate.weight"},
    {"model.layers.{i}.mlp.up_proj.weight", "blk.{i}.ffn_up.weight"},
    {"model.layers.{i}.mlp.down_proj.weight", "blk.{i}.ffn_down.weight"},
};

constexpr TensorRule kMixtralMoe[] = {
    {"model.layers.{i}.block_sparse_moe.gate.weight", "blk.{i}.ffn_gate_inp.weight"},
    {"model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight", "blk.{i}.ffn_gate_exps.weight",
     Op::Stack},
    {"model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight", "blk.{i}.ffn_up_exps.weight",
     Op::Stack},
    {"model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight", "blk.{i}.ffn_down_exps.weight",
     Op::Stack},
};

constexpr TensorRule kMoe[] = {
    {"model.layers.{i}.mlp.gate.weight", "blk.{i}.ffn_gate_inp.weight"},
    {"model.layers.{i}.mlp.experts.{e}.gate_proj.weight", "blk.{i}.ffn_gate_exps.weight",
     Op::Stack},
    {"model.layers.{i}.mlp.experts.{e}.up_proj.weight", "blk.{i}.ffn_up_exps.weight", Op::Stack},
    {"model.layers.{i}.mlp.experts.{e}.down_proj.weight", "blk.{i}.ffn_down_exps.weight",
     Op::Stack},
};

constexpr TensorRule kQwen2Shared[] = {
    {"model.layers.{i}.mlp.shared_expert.gate_proj.weight", "blk.{i}.ffn_gate_shexp.weight"},
    {"model.layers.{i}.mlp.shared_expert.up_proj.weight", "blk.{i}.ffn_up_shexp.weight"},
    {"model.layers.{i}.mlp.shared_expert.down_proj.weight", "blk.{i}.ffn_down_shexp.weight"},
    {"model.layers.{i}.mlp.shared_expert_gate.weight", "blk.{i}.ffn_gate_inp_shexp.weight"},
};

constexpr TensorRule kDeepseekShared[] = {
    {"model.layers.{i}.mlp.shared_experts.gate_proj.weight", "blk.{i}.ffn_gate_shexp.weight"},
    {"model.layers.{i}.mlp.shared_experts.up_proj.weight", "blk.{i}.ffn_up_shexp.weight"},
    {"model.layers.{i}.mlp.shared_experts.down_proj.weight", "blk.{i}.ffn_down_shexp.weight"},
    {"model.layers.{i}.mlp.gate.e_score_correction_bias", "blk.{i}.exp_probs_b.bias"},
};

constexpr TensorRule kMla[] = {
    {"model.layers.{i}.self_attn.q_proj.weight", "blk.{i}.attn_q.weight"},
    {"model.layers.{i}.self_attn.q_a_proj.weight", "blk.{i}.attn_q_a.weight"},
    {"model.layers.{i}.self_attn.q_a_layernorm.weight", "blk.{i}.attn_q_a_norm.weight"},
    {"model.layers.{i}.self_attn.q_b_proj.weight", "blk.{i}.attn_q_b.weight"},
    {"model.layers.{i}.self_attn.kv_a_proj_with_mqa.weight", "blk.{i}.attn_kv_a_mqa.weight"},
    {"model.layers.{i}.self_attn.kv_a_layernorm.weight", "blk.{i}.attn_kv_a_norm.weight"},
    {"model.layers.{i}.self_attn.kv_b_proj.weight", "blk.{i}.attn_k_b.weight", Op::KvBToK},
    {"model.layers.{i}.self_attn.kv_b_proj.weight", "blk.{i}.attn_v_b.weight", Op::KvBToV},
    {"model.layers.{i}.self_attn.o_proj.weight", "blk.{i}.attn_output.weight"},
};

constexpr TensorRule kGptOss[] = {
    {"model.layers.{i}.input_layernorm.weight", "blk.{i}.attn_norm.weight"},
    {"model.layers.{i}.post_attention_layernorm.weight", "blk.{i}.post_attention_norm.weight"},
    {"model.layers.{i}.self_attn.sinks", "blk.{i}.attn_sinks.weight"},
    {"model.layers.{i}.mlp.router.weight", "blk.{i}.ffn_gate_inp.weight"},
    {"model.layers.{i}.mlp.router.bias", "blk.{i}.ffn_gate_inp.bias"},
    {"model.layers.{i}.mlp.experts.gate_up_proj", "blk.{i}.ffn_gate_exps.weight", Op::GateUpEven},
    {"model.layers.{i}.mlp.experts.gate_up_proj", "blk.{i}.ffn_up_exps.weight", Op::GateUpOdd},
    {"model.layers.{i}.mlp.experts.gate_up_proj_bias", "blk.{i}.ffn_gate_exps.bias",
     Op::GateUpEven},
    {"model.layers.{i}.mlp.experts.gate_up_proj_bias", "blk.{i}.ffn_up_exps.bias", Op::GateUpOdd},
    {"model.layers.{i}.mlp.experts.down_proj", "blk.{i}.ffn_down_exps.weight", Op::TransposeLast2},
    // MXFP4 checkpoints (the published gpt-oss-20b/120b): blocks + scales, read as MXFP4.
    {"model.layers.{i}.mlp.experts.gate_up_proj_blocks", "blk.{i}.ffn_gate_exps.weight",
     Op::MxfpGateEven},
    {"model.layers.{i}.mlp.experts.gate_up_proj_blocks", "blk.{i}.ffn_up_exps.weight",
     Op::MxfpGateOdd},
    {"model.layers.{i}.mlp.experts.down_proj_blocks", "blk.{i}.ffn_down_exps.weight",
     Op::MxfpRows},
    {"model.layers.{i}.mlp.experts.down_proj_bias", "blk.{i}.ffn_down_exps.bias"},
};

using Rules = std::span<const TensorRule>;
constexpr Rules kLlamaRules[] = {kGlobal, kNorms, kAttnLlama, kDenseMlp, kMixtralMoe};
constexpr Rules kQwen2MoeRules[] = {kGlobal, kNorms, kAttn, kMoe, kQwen2Shared};
constexpr Rules kQwen3MoeRules[] = {kGlobal, kNorms, kAttn, kQkNorm, kMoe};
constexpr Rules kOlmoeRules[] = {kGlobal, kNorms, kAttn, kQkNorm, kMoe};
constexpr Rules kDeepseekRules[] = {kGlobal, kNorms, kMla, kDenseMlp, kMoe, kDeepseekShared};
constexpr Rules kGptOssRules[] = {kGlobal, kGptOss, kAttn};

constexpr FamilySpec kFamilies[] = {
    {"LlamaForCausalLM", "llama", kLlamaRules, llama_hparams},
    {"MistralForCausalLM", "llama", kLlamaRules, llama_hparams},
    {"MixtralForCausalLM", "llama", kLlamaRules, llama_hparams},
    {"Qwen2MoeForCausalLM", "qwen2moe", kQwen2MoeRules, qwen2moe_hparams},
    {"Qwen3MoeForCausalLM", "qwen3moe", kQwen3MoeRules, qwen3moe_hparams},
    {"OlmoeForCausalLM", "olmoe", kOlmoeRules, olmoe_hparams},
    {"DeepseekV2ForCausalLM", "deepseek2", kDeepseekRules, deepseek2_hparams},
    {"DeepseekV3ForCausalLM", "deepseek2", kDeepseekRules, deepseek3_hparams},
    {"GptOssForCausalLM", "gpt-oss", kGptOssRules, gptoss_hparams},
};

}  // namespace

void common_hparams(Config& cfg, Meta& m) {
    m.u32("block_count", cfg.first_int({"num_hidden_layers", "n_layer", "num_layers"}));
    m.u32("context_length", cfg.first_int({"max_position_embeddings", "n_ctx", "n_positions",
                                           "max_length", "max_sequence_length"}));
    m.u32("embedding_length", cfg.first_int({"hidden_size", "n_embd", "dim"}));
    m.u32("feed_forward_length", cfg.first_int({"intermediate_size", "n_inner", "hidden_dim"}));
    m.u32("attention.head_count", cfg.first_int({"num_attention_heads", "n_head", "n_heads"}));
    m.u32("attention.head_count_kv", cfg.first_int({"num_key_value_heads", "n_kv_heads"}));
    rope_scaling(cfg, m);
    m.f32("rope.freq_base", cfg.rope_float("rope_theta"));
    m.f32("attention.layer_norm_rms_epsilon", cfg.first_float({"rms_norm_eps", "norm_eps"}));
    m.f32("attention.layer_norm_epsilon",
          cfg.first_float({"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"}));
    m.u32("expert_count", cfg.first_int({"num_local_experts", "num_experts", "n_routed_experts"}));
    m.u32("expert_used_count", cfg.first_int({"num_experts_per_tok", "num_experts_per_token"}));
    m.u32("expert_group_count", cfg.get_int("n_group"));
    m.u32("expert_group_used_count", cfg.get_int("topk_group"));
    m.u32("expert_gating_func",
          gating_func(cfg, cfg.first_string({"score_function", "scoring_func", "score_func"})));
    if (auto head_dim = cfg.get_int("head_dim")) {
        m.u32("attention.key_length", head_dim);
        m.u32("attention.value_length", head_dim);
    }
}

std::span<const FamilySpec> families() {
    return kFamilies;
}

const FamilySpec* find_family(std::string_view hf_class) {
    for (const auto& f : kFamilies)
        if (f.hf_class == hf_class) return &f;
    return nullptr;
}

std::string supported_families() {
    std::string out;
    for (const auto& f : kFamilies) {
        if (!out.empty()) out += ", ";
        out += f.hf_class;
    }
    return out;
}

}  // namespace moe::hf
