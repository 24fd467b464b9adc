#include "analysis/compare_result.h"

#include <filesystem>

namespace moe {

using nlohmann::json;

// One list of fields for both directions; a field missing from the JSON keeps its default.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PromptRun, prompt, output, error, n_prompt,
                                                n_generated, prompt_seconds, gen_seconds,
                                                stopped_by_eog, repeat_share, failures)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(
    ModelMeasures, path, family, name, arch, error, total_params, active_params, params_source,
    disk_bytes, n_vocab, n_moe_layers, n_expert, n_expert_used, load_seconds, rss_start, rss_peak,
    rss_isolated, bench_tokens, prompt_tps, gen_tps, decode_bytes, ppl_error, ppl, ppl_stderr,
    bits_per_byte, ppl_tokens, ppl_scored, ppl_ctx, routing, top_k_sweep, domains, top_k_sweep_note,
    domains_note, prompts)

json to_json(const ModelMeasures& m) {
    json j;
    to_json(j, m);
    return j;
}

Result<ModelMeasures> measures_from_json(const json& j) {
    // json::value throws on a field of another type; nothing here lets it escape.
    try {
        return j.get<ModelMeasures>();
    } catch (const json::exception& e) {
        return make_error("measures JSON: {}", e.what());
    }
}

namespace {

std::string stem(const std::string& path) {
    std::filesystem::path p(path);
    if (p.filename().empty()) p = p.parent_path();
    std::string s = p.filename().string();
    if (s.size() > 5 && s.substr(s.size() - 5) == ".gguf") s.resize(s.size() - 5);
    return s;
}

}  // namespace

ModelNames short_names(const ModelMeasures& a, const ModelMeasures& b) {
    std::string x = stem(a.path), y = stem(b.path);
    if (x.empty()) x = "A";
    if (y.empty()) y = "B";
    if (x == y) x = "A: " + x, y = "B: " + y;
    return {x, y};
}

int failure_count(const ModelMeasures& m) {
    int n = 0;
    for (const auto& p : m.prompts) n += p.failures.empty() ? 0 : 1;
    return n;
}

bool has_ppl(const ModelMeasures& m) {
    return m.error.empty() && m.ppl_error.empty() && m.ppl > 0;
}

// Perplexities per token are comparable only over the same tokens.
bool same_tokens(const ModelMeasures& a, const ModelMeasures& b) {
    return a.n_vocab == b.n_vocab && a.ppl_tokens == b.ppl_tokens && a.ppl_ctx == b.ppl_ctx;
}

}  // namespace moe
