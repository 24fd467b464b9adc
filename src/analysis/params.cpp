#include "analysis/params.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <sstream>

namespace moe {

namespace {

enum class Match { Exact, Contains, Suffix, SplitExpert };

struct RoleRule {
    Match match;
    std::string_view pattern;
    ParamRole role;
};

// The one table of GGUF name patterns -> role; the first matching rule wins.
constexpr RoleRule kRoleRules[] = {
    {Match::Exact, "token_embd.weight", ParamRole::Embedding},
    {Match::Exact, "output.weight", ParamRole::Output},
    {Match::Contains, "_exps.", ParamRole::RoutedExperts},      // fused experts and biases
    {Match::SplitExpert, "", ParamRole::RoutedExperts},         // old ffn_gate.{e}.weight
    {Match::Contains, "ffn_gate_inp_shexp", ParamRole::Small},  // shared-expert sigmoid gate
    {Match::Contains, "_shexp.", ParamRole::SharedExperts},
    {Match::Contains, "ffn_gate_inp", ParamRole::Small},  // router (and its bias)
    {Match::Contains, "exp_probs_b", ParamRole::Small},   // selection bias
    {Match::Contains, "norm", ParamRole::Small},          // every RMSNorm weight
    {Match::Suffix, ".bias", ParamRole::Small},
    {Match::Contains, "attn_sinks", ParamRole::Small},
    {Match::Contains, ".attn_", ParamRole::Attention},
    {Match::Contains, ".ffn_gate.", ParamRole::DenseFfn},
    {Match::Contains, ".ffn_up.", ParamRole::DenseFfn},
    {Match::Contains, ".ffn_down.", ParamRole::DenseFfn},
};

// "blk.N." prefix length, or 0.
size_t block_prefix(std::string_view name) {
    if (name.substr(0, 4) != "blk.") return 0;
    size_t i = 4;
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
    if (i == 4 || i >= name.size() || name[i] != '.') return 0;
    return i + 1;
}

// blk.N.ffn_{gate,up,down}.{E}.weight: experts stored one tensor each (early Mixtral files).
bool is_split_expert(std::string_view name) {
    const size_t p = block_prefix(name);
    if (p == 0) return false;
    std::string_view rest = name.substr(p);
    for (std::string_view head : {"ffn_gate.", "ffn_up.", "ffn_down."}) {
        if (rest.substr(0, head.size()) != head) continue;
        rest.remove_prefix(head.size());
        return !rest.empty() && std::isdigit(static_cast<unsigned char>(rest[0]));
    }
    return false;
}

bool rule_matches(const RoleRule& r, std::string_view name) {
    switch (r.match) {
        case Match::Exact:
            return name == r.pattern;
        case Match::Contains:
            return name.find(r.pattern) != std::string_view::npos;
        case Match::Suffix:
            return name.size() >= r.pattern.size() &&
                   name.substr(name.size() - r.pattern.size()) == r.pattern;
        case Match::SplitExpert:
            return is_split_expert(name);
    }
    return false;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::string_view role_name(ParamRole r) {
    switch (r) {
        case ParamRole::Embedding:
            return "embeddings";
        case ParamRole::Output:
            return "output head";
        case ParamRole::Attention:
            return "attention";
        case ParamRole::RoutedExperts:
            return "routed experts";
        case ParamRole::SharedExperts:
            return "shared experts";
        case ParamRole::DenseFfn:
            return "dense FFN";
        case ParamRole::Small:
            return "norms+routers+biases";
    }
    return "?";
}

std::string_view role_key(ParamRole r) {
    switch (r) {
        case ParamRole::Embedding:
            return "embeddings";
        case ParamRole::Output:
            return "output_head";
        case ParamRole::Attention:
            return "attention";
        case ParamRole::RoutedExperts:
            return "routed_experts";
        case ParamRole::SharedExperts:
            return "shared_experts";
        case ParamRole::DenseFfn:
            return "dense_ffn";
        case ParamRole::Small:
            return "norms_routers_biases";
    }
    return "?";
}

ParamRole classify_tensor(std::string_view name) {
    for (const auto& r : kRoleRules)
        if (rule_matches(r, name)) return r.role;
    return ParamRole::Small;
}

int tensor_layer(std::string_view name) {
    const size_t p = block_prefix(name);
    if (p == 0) return -1;
    int v = 0;
    for (size_t i = 4; i + 1 < p; ++i) {
        v = v * 10 + (name[i] - '0');
        if (v > (1 << 24)) return -1;
    }
    return v;
}

bool publisher_counts_embedding(std::string_view arch) {
    // OpenAI (gpt-oss model card) and DeepSeek (V2-Lite's 2.4B only fits without it) count
    // active parameters without the embedding table; Mistral (Mixtral), Qwen and AllenAI (OLMoE)
    // count it (Qwen1.5-MoE's 2.7B, Qwen3-30B-A3B's 3.3B and OLMoE's 1.3B only fit with it).
    return arch != "gpt-oss" && arch != "deepseek2";
}

ParamReport count_params(const ModelConfig& c, std::vector<CountedTensor> tensors) {
    ParamReport r;
    r.headline_includes_embd = publisher_counts_embedding(c.arch);
    std::map<int, int64_t> routed_by_layer;
    std::map<DType, TypeCount> by_type;
    bool has_output = false, has_embd = false;
    for (auto& t : tensors) {
        t.role = classify_tensor(t.name);
        t.layer = tensor_layer(t.name);
        RoleCount& rc = r.roles[size_t(t.role)];
        rc.total += t.numel;
        rc.bytes += t.bytes;
        r.total += t.numel;
        r.weight_bytes += t.bytes;
        if (t.role == ParamRole::RoutedExperts)
            routed_by_layer[t.layer] += t.numel;
        else
            rc.active += t.numel;
        has_output = has_output || t.role == ParamRole::Output;
        has_embd = has_embd || t.role == ParamRole::Embedding;
        TypeCount& tc = by_type[t.dtype];
        tc.dtype = t.dtype;
        tc.n_tensors++;
        tc.numel += t.numel;
        tc.bytes += t.bytes;
    }
    const int64_t E = c.moe.n_expert, k = c.moe.n_expert_used;
    for (const auto& [layer, n] : routed_by_layer) {
        const bool moe_layer =
            E > 0 && layer >= 0 && layer < int(c.is_moe.size()) && c.is_moe[size_t(layer)];
        // n is a whole number of experts' worth; n * k / E without overflow.
        const int64_t act = moe_layer ? (n / E) * k + (n % E) * k / E : n;
        r.roles[size_t(ParamRole::RoutedExperts)].active += act;
    }
    r.tied_embeddings = has_embd && !has_output;
    for (const auto& rc : r.roles) r.active_incl_embd += rc.active;
    r.active_excl_embd = r.active_incl_embd;
    if (!r.tied_embeddings) r.active_excl_embd -= r.role(ParamRole::Embedding).active;
    for (const auto& [_, tc] : by_type) r.types.push_back(tc);
    std::sort(r.types.begin(), r.types.end(),
              [](const TypeCount& a, const TypeCount& b) { return a.bytes > b.bytes; });
    r.tensors = std::move(tensors);
    return r;
}

ParamReport count_source_params(const ModelSource& src, const ModelConfig& c) {
    std::vector<CountedTensor> ts;
    for (const auto& name : src.tensor_names()) {
        auto v = src.tensor(name);
        if (!v) continue;
        CountedTensor t;
        t.name = name;
        t.shape = v->shape;
        t.dtype = v->dtype;
        t.numel = v->shape.numel();
        t.bytes = uint64_t(v->nbytes());
        ts.push_back(std::move(t));
    }
    return count_params(c, std::move(ts));
}

StoragePolicy published_storage(std::string_view arch) {
    StoragePolicy p;
    p.matrix_type = DType::BF16;
    if (arch == "gpt-oss") p.expert_type = DType::MXFP4;
    return p;
}

Result<ParamReport> count_planned_params(const Model& m, bool tied_embeddings,
                                         const StoragePolicy& policy) {
    if (!m.plan) return make_error("the model was not loaded in plan mode");
    std::vector<CountedTensor> ts;
    for (const auto& p : *m.plan) {
        if (!p.required) {
            if (p.name == "output.weight" && tied_embeddings) continue;
            if (p.name.find("exp_probs_b") != std::string::npos &&
                m.config.moe.gating != Gating::Sigmoid)
                continue;
        }
        CountedTensor t;
        t.name = p.name;
        t.shape = p.shape;
        t.numel = p.shape.numel();
        const ParamRole role = classify_tensor(p.name);
        if (auto it = policy.per_tensor.find(p.name); it != policy.per_tensor.end()) {
            t.dtype = it->second;
        } else if (p.shape.rank <= 1 || ends_with(p.name, ".bias")) {
            t.dtype = DType::F32;
        } else {
            t.dtype = role == ParamRole::RoutedExperts && policy.expert_type ? *policy.expert_type
                                                                             : policy.matrix_type;
            if (p.shape.last() % traits(t.dtype).block_elems != 0) t.dtype = DType::F16;
        }
        t.bytes = uint64_t(p.shape.rows()) * uint64_t(dtype_row_bytes(t.dtype, p.shape.last()));
        ts.push_back(std::move(t));
    }
    return count_params(m.config, std::move(ts));
}

uint64_t kv_bytes_per_token(const ModelConfig& c, KvTypes t) {
    uint64_t per = 0;
    for (int il = 0; il < c.n_layer; ++il) per += uint64_t(kv_layer_token_bytes(c, il, t));
    return per;
}

uint64_t kv_cache_bytes(const ModelConfig& c, int64_t n_ctx, KvTypes t) {
    return kv_bytes_per_token(c, t) * uint64_t(std::max<int64_t>(0, n_ctx));
}

}  // namespace moe
