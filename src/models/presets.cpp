// The table of presets. Hyperparameters from each model's published config.json; metadata keys
// and value types are those the upstream HF-to-GGUF converter writes for the architecture (as in
// the fixture GGUFs), so a synthesized file has the header a converted one would have.
#include "models/presets.h"

#include "core/byte_alphabet.h"

namespace moe {

namespace {

using Kv = std::vector<std::pair<std::string, gguf::Value>>;

// Builds "{arch}.{key}" entries in the order the converter writes them.
struct Meta {
    std::string arch;
    Kv kv;
    explicit Meta(std::string a, const std::string& name) : arch(std::move(a)) {
        kv.emplace_back("general.architecture", meta_str(arch));
        kv.emplace_back("general.type", meta_str("model"));
        kv.emplace_back("general.name", meta_str(name));
    }
    Meta& u32(const std::string& k, uint64_t v) {
        kv.emplace_back(arch + "." + k, meta_u32(v));
        return *this;
    }
    Meta& f32(const std::string& k, double v) {
        kv.emplace_back(arch + "." + k, meta_f32(v));
        return *this;
    }
    Meta& str(const std::string& k, std::string v) {
        kv.emplace_back(arch + "." + k, meta_str(std::move(v)));
        return *this;
    }
    Meta& boolean(const std::string& k, bool v) {
        kv.emplace_back(arch + "." + k, meta_bool(v));
        return *this;
    }
    // The common head every converter writes first.
    Meta& base(int ctx, int n_embd, int n_layer, int n_ff, int n_head, int n_head_kv) {
        return u32("block_count", n_layer)
            .u32("context_length", ctx)
            .u32("embedding_length", n_embd)
            .u32("feed_forward_length", n_ff)
            .u32("attention.head_count", n_head)
            .u32("attention.head_count_kv", n_head_kv);
    }
};

Preset make(std::string name, std::string repo, const Meta& m, int64_t n_vocab, double total_b,
            double active_b) {
    Preset p;
    p.name = std::move(name);
    p.hf_repo = std::move(repo);
    p.arch = m.arch;
    p.metadata = m.kv;
    p.n_vocab = n_vocab;
    p.published_total_b = total_b;
    p.published_active_b = active_b;
    return p;
}

// Dense Llama and Mixtral ("llama" with experts).
Preset llama_like(std::string name, std::string repo, std::string title, int64_t vocab, int ctx,
                  double rope, int n_expert, int n_used, double total_b, double active_b) {
    Meta m("llama", title);
    m.base(ctx, 4096, 32, 14336, 32, 8)
        .f32("rope.freq_base", rope)
        .f32("attention.layer_norm_rms_epsilon", 1e-5);
    if (n_expert > 0) m.u32("expert_count", n_expert).u32("expert_used_count", n_used);
    m.u32("attention.key_length", 128).u32("attention.value_length", 128);
    m.kv.emplace_back("general.file_type", meta_u32(0));  // replaced by synth
    m.u32("vocab_size", uint64_t(vocab)).u32("rope.dimension_count", 128);
    return make(std::move(name), std::move(repo), m, vocab, total_b, active_b);
}

Preset qwen2moe(std::string name, std::string repo, std::string title, int n_embd, int n_layer,
                int n_ff, int n_head, int n_head_kv, int ctx, int n_expert, int n_used,
                int n_ff_exp, int n_ff_shexp, double total_b, double active_b) {
    Meta m("qwen2moe", title);
    m.base(ctx, n_embd, n_layer, n_ff, n_head, n_head_kv)
        .f32("rope.freq_base", 1000000.0)
        .f32("attention.layer_norm_rms_epsilon", 1e-6)
        .u32("expert_count", n_expert)
        .u32("expert_used_count", n_used);
    m.kv.emplace_back("general.file_type", meta_u32(0));
    m.u32("expert_feed_forward_length", n_ff_exp)
        .u32("expert_shared_feed_forward_length", n_ff_shexp);
    return make(std::move(name), std::move(repo), m, 151936, total_b, active_b);
}

struct MlaShape {
    int n_embd, n_layer, n_ff, n_head, q_lora, n_expert, n_used, n_shared, n_ff_exp, n_dense;
    int n_group, n_group_used, gating;  // gating: 1 softmax, 2 sigmoid
    double scale;
    bool norm;  // expert_weights_norm (written only when the config sets norm_topk_prob)
    double yarn_mscale_all_dim;
    int64_t vocab;
};

// DeepSeek V2 / V2-Lite / V3: kv_lora 512, qk_nope 128, qk_rope 64, v_head 128, YaRN 40 x 4096.
Preset deepseek(std::string name, std::string repo, std::string title, const MlaShape& s,
                double total_b, double active_b) {
    const int kv_lora = 512, nope = 128, rope = 64, v_head = 128;
    Meta m("deepseek2", title);
    m.base(163840, s.n_embd, s.n_layer, s.n_ff, s.n_head, 1)
        .f32("rope.freq_base", 10000.0)
        .f32("attention.layer_norm_rms_epsilon", 1e-6)
        .u32("expert_count", s.n_expert)
        .u32("expert_used_count", s.n_used)
        .u32("expert_group_count", s.n_group)
        .u32("expert_group_used_count", s.n_group_used)
        .u32("expert_gating_func", s.gating)
        .u32("attention.key_length", kv_lora + rope)
        .u32("attention.value_length", kv_lora);
    m.kv.emplace_back("general.file_type", meta_u32(0));
    m.u32("leading_dense_block_count", s.n_dense).u32("vocab_size", uint64_t(s.vocab));
    if (s.q_lora > 0) m.u32("attention.q_lora_rank", s.q_lora);
    m.u32("attention.kv_lora_rank", kv_lora)
        .u32("attention.key_length_mla", nope + rope)
        .u32("attention.value_length_mla", v_head)
        .u32("expert_feed_forward_length", s.n_ff_exp)
        .u32("expert_shared_count", s.n_shared)
        .f32("expert_weights_scale", s.scale);
    if (s.norm) m.boolean("expert_weights_norm", true);
    m.u32("rope.dimension_count", rope)
        .str("rope.scaling.type", "yarn")
        .f32("rope.scaling.factor", 40.0)
        .u32("rope.scaling.original_context_length", 4096)
        .f32("rope.scaling.yarn_log_multiplier", 0.1 * s.yarn_mscale_all_dim);
    return make(std::move(name), std::move(repo), m, s.vocab, total_b, active_b);
}

std::vector<Preset> build() {
    std::vector<Preset> v;
    // mistralai/Mixtral-8x7B-v0.1: 46.7B total, 12.9B active (Mistral AI announcement).
    v.push_back(llama_like("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1",
                           "Mixtral-8x7B (synthetic)", 32000, 32768, 1000000.0, 8, 2, 46.7, 12.9));
    // meta-llama/Meta-Llama-3-8B: dense baseline.
    v.push_back(llama_like("llama-3-8b", "meta-llama/Meta-Llama-3-8B", "Llama-3-8B (synthetic)",
                           128256, 8192, 500000.0, 0, 0, 8.0, 8.0));
    // Qwen/Qwen1.5-MoE-A2.7B: 14.3B total, 2.7B active.
    v.push_back(qwen2moe("qwen1.5-moe-a2.7b", "Qwen/Qwen1.5-MoE-A2.7B",
                         "Qwen1.5-MoE-A2.7B (synthetic)", 2048, 24, 5632, 16, 16, 8192, 60, 4, 1408,
                         5632, 14.3, 2.7));
    // Qwen/Qwen2-57B-A14B: 57B total, 14B active.
    v.push_back(qwen2moe("qwen2-57b-a14b", "Qwen/Qwen2-57B-A14B", "Qwen2-57B-A14B (synthetic)",
                         3584, 28, 18944, 28, 4, 131072, 64, 8, 2560, 20480, 57.0, 14.0));
    {  // Qwen/Qwen3-30B-A3B: 30.5B total, 3.3B active.
        Meta m("qwen3moe", "Qwen3-30B-A3B (synthetic)");
        m.base(40960, 2048, 48, 6144, 32, 4)
            .f32("rope.freq_base", 1000000.0)
            .f32("attention.layer_norm_rms_epsilon", 1e-6)
            .u32("expert_count", 128)
            .u32("expert_used_count", 8)
            .u32("attention.key_length", 128)
            .u32("attention.value_length", 128);
        m.kv.emplace_back("general.file_type", meta_u32(0));
        m.u32("expert_feed_forward_length", 768);
        v.push_back(make("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B", m, 151936, 30.5, 3.3));
    }
    {  // allenai/OLMoE-1B-7B-0924: 6.9B total, 1.3B active.
        Meta m("olmoe", "OLMoE-1B-7B (synthetic)");
        m.base(4096, 2048, 16, 1024, 16, 16)
            .f32("rope.freq_base", 10000.0)
            .f32("attention.layer_norm_rms_epsilon", 1e-5)
            .u32("expert_count", 64)
            .u32("expert_used_count", 8);
        m.kv.emplace_back("general.file_type", meta_u32(0));
        v.push_back(make("olmoe-1b-7b", "allenai/OLMoE-1B-7B-0924", m, 50304, 6.9, 1.3));
    }
    // deepseek-ai/DeepSeek-V2-Lite: 15.7B total, 2.4B active; softmax greedy top-6, no q-LoRA.
    v.push_back(
        deepseek("deepseek-v2-lite", "deepseek-ai/DeepSeek-V2-Lite", "DeepSeek-V2-Lite (synthetic)",
                 {2048, 27, 10944, 16, 0, 64, 6, 2, 1408, 1, 1, 1, 1, 1.0, false, 0.707, 102400},
                 15.7, 2.4));
    // deepseek-ai/DeepSeek-V2: 236B total, 21B active; group-limited greedy (8 groups, 3 used).
    v.push_back(deepseek(
        "deepseek-v2", "deepseek-ai/DeepSeek-V2", "DeepSeek-V2 (synthetic)",
        {5120, 60, 12288, 128, 1536, 160, 6, 2, 1536, 1, 8, 3, 1, 16.0, false, 0.707, 102400},
        236.0, 21.0));
    // deepseek-ai/DeepSeek-V3: 671B total, 37B active (MTP module not counted); sigmoid + bias,
    // 8 groups / 4 used, scale 2.5, renormalised.
    v.push_back(
        deepseek("deepseek-v3", "deepseek-ai/DeepSeek-V3", "DeepSeek-V3 (synthetic)",
                 {7168, 61, 18432, 128, 1536, 256, 8, 1, 2048, 3, 8, 4, 2, 2.5, true, 1.0, 129280},
                 671.0, 37.0));
    {  // openai/gpt-oss-20b: 20.9B total, 3.6B active (model card: 21B / 3.6B).
        Meta m("gpt-oss", "gpt-oss-20b (synthetic)");
        m.base(131072, 2880, 24, 2880, 64, 8)
            .str("rope.scaling.type", "yarn")
            .f32("rope.scaling.factor", 32.0)
            .u32("rope.scaling.original_context_length", 4096)
            .f32("rope.scaling.yarn_beta_fast", 32.0)
            .f32("rope.scaling.yarn_beta_slow", 1.0)
            .f32("rope.freq_base", 150000.0)
            .f32("attention.layer_norm_rms_epsilon", 1e-5)
            .u32("expert_count", 32)
            .u32("expert_used_count", 4)
            .u32("attention.key_length", 64)
            .u32("attention.value_length", 64);
        m.kv.emplace_back("general.file_type", meta_u32(0));
        m.u32("attention.sliding_window", 128).u32("expert_feed_forward_length", 2880);
        v.push_back(make("gpt-oss-20b", "openai/gpt-oss-20b", m, 201088, 20.9, 3.6));
    }
    return v;
}

}  // namespace

const std::vector<Preset>& presets() {
    static const std::vector<Preset> kPresets = build();
    return kPresets;
}

const Preset* find_preset(std::string_view name) {
    for (const auto& p : presets())
        if (p.name == name) return &p;
    return nullptr;
}

std::string preset_names() {
    std::string s;
    for (const auto& p : presets()) s += (s.empty() ? "" : ", ") + p.name;
    return s;
}

std::vector<std::pair<std::string, gguf::Value>> synthetic_vocab(int64_t n_vocab) {
    gguf::Array tokens{gguf::ValueType::STRING, {}}, types{gguf::ValueType::I32, {}};
    gguf::Array merges{gguf::ValueType::STRING, {}};
    tokens.items.reserve(size_t(n_vocab));
    types.items.reserve(size_t(n_vocab));
    auto add = [&](std::string t, int type) {
        if (int64_t(tokens.items.size()) >= n_vocab) return false;
        tokens.items.push_back(meta_str(std::move(t)));
        types.items.push_back(meta_i32(type));
        return true;
    };
    add("<pad>", 3);
    add("<s>", 3);
    add("</s>", 3);
    for (int b = 0; b < 256; ++b) add(byte_to_unicode(uint8_t(b)), 1);
    const std::string sp = byte_to_unicode(uint8_t(' '));  // "Ġ"
    const std::pair<std::string, std::string> kMerges[] = {
        {sp, "t"},  {sp, "a"}, {"h", "e"}, {"i", "n"}, {"r", "e"}, {"o", "n"},  {sp + "t", "he"},
        {"e", "r"}, {sp, "s"}, {"a", "t"}, {"e", "n"}, {sp, "o"},  {sp, "c"},   {"o", "r"},
        {"e", "s"}, {sp, "w"}, {"i", "s"}, {"a", "n"}, {sp, "b"},  {sp, "f"},   {"i", "t"},
        {sp, "m"},  {sp, "p"}, {sp, "d"},  {"a", "l"}, {"a", "r"}, {"in", "g"}, {sp + "a", "n"},
    };
    for (const auto& [a, b] : kMerges) {
        if (!add(a + b, 1)) break;
        merges.items.push_back(meta_str(a + " " + b));
    }
    for (int64_t i = int64_t(tokens.items.size()); i < n_vocab; ++i)
        add("<f" + std::to_string(i) + ">", 1);
    Kv kv;
    kv.emplace_back("tokenizer.ggml.model", meta_str("gpt2"));
    kv.emplace_back("tokenizer.ggml.pre", meta_str("default"));
    kv.emplace_back("tokenizer.ggml.tokens",
                    gguf::Value{gguf::ValueType::ARRAY, std::move(tokens)});
    kv.emplace_back("tokenizer.ggml.token_type",
                    gguf::Value{gguf::ValueType::ARRAY, std::move(types)});
    kv.emplace_back("tokenizer.ggml.merges",
                    gguf::Value{gguf::ValueType::ARRAY, std::move(merges)});
    kv.emplace_back("tokenizer.ggml.bos_token_id", meta_u32(1));
    kv.emplace_back("tokenizer.ggml.eos_token_id", meta_u32(2));
    kv.emplace_back("tokenizer.ggml.padding_token_id", meta_u32(0));
    return kv;
}

std::shared_ptr<MetadataSource> preset_source(const Preset& p) {
    Kv kv = p.metadata;
    if (p.n_vocab > 0) {
        // The converter writes general.quantization_version after the architecture keys.
        kv.emplace_back("general.quantization_version", meta_u32(2));
        for (auto& e : synthetic_vocab(p.n_vocab)) kv.push_back(std::move(e));
    }
    return std::make_shared<MetadataSource>("preset:" + p.name, std::move(kv));
}

}  // namespace moe
