#include "analysis/compare_result.h"

#include <filesystem>

namespace moe {

using nlohmann::json;

json to_json(const ModelMeasures& m) {
    json j;
    j["path"] = m.path, j["family"] = m.family, j["name"] = m.name, j["arch"] = m.arch;
    j["error"] = m.error;
    j["total_params"] = m.total_params, j["active_params"] = m.active_params;
    j["params_source"] = m.params_source;
    j["disk_bytes"] = m.disk_bytes;
    j["n_vocab"] = m.n_vocab, j["n_moe_layers"] = m.n_moe_layers;
    j["n_expert"] = m.n_expert, j["n_expert_used"] = m.n_expert_used;
    j["load_seconds"] = m.load_seconds;
    j["rss_start"] = m.rss_start, j["rss_peak"] = m.rss_peak, j["rss_isolated"] = m.rss_isolated;
    j["bench_tokens"] = m.bench_tokens, j["decode_bytes"] = m.decode_bytes;
    j["prompt_tps"] = m.prompt_tps, j["gen_tps"] = m.gen_tps;
    j["ppl_error"] = m.ppl_error;
    j["ppl"] = m.ppl, j["ppl_stderr"] = m.ppl_stderr, j["bits_per_byte"] = m.bits_per_byte;
    j["ppl_tokens"] = m.ppl_tokens, j["ppl_scored"] = m.ppl_scored, j["ppl_ctx"] = m.ppl_ctx;
    j["routing"] = m.routing;
    j["top_k_sweep"] = m.top_k_sweep, j["domains"] = m.domains;
    j["top_k_sweep_note"] = m.top_k_sweep_note, j["domains_note"] = m.domains_note;
    json ps = json::array();
    for (const auto& p : m.prompts)
        ps.push_back({{"prompt", p.prompt},
                      {"output", p.output},
                      {"error", p.error},
                      {"n_prompt", p.n_prompt},
                      {"n_generated", p.n_generated},
                      {"prompt_seconds", p.prompt_seconds},
                      {"gen_seconds", p.gen_seconds},
                      {"stopped_by_eog", p.stopped_by_eog},
                      {"repeat_share", p.repeat_share},
                      {"failures", p.failures}});
    j["prompts"] = ps;
    return j;
}

namespace {

ModelMeasures measures_from_json_or_throw(const json& j) {
    ModelMeasures m;
    m.path = j.value("path", ""), m.family = j.value("family", ""), m.name = j.value("name", "");
    m.arch = j.value("arch", ""), m.error = j.value("error", "");
    m.total_params = j.value("total_params", int64_t(0)),
    m.active_params = j.value("active_params", int64_t(0));
    m.params_source = j.value("params_source", "");
    m.disk_bytes = j.value("disk_bytes", uint64_t(0));
    m.n_vocab = j.value("n_vocab", 0), m.n_moe_layers = j.value("n_moe_layers", 0);
    m.n_expert = j.value("n_expert", 0), m.n_expert_used = j.value("n_expert_used", 0);
    m.load_seconds = j.value("load_seconds", 0.0);
    m.rss_start = j.value("rss_start", uint64_t(0)), m.rss_peak = j.value("rss_peak", uint64_t(0));
    m.rss_isolated = j.value("rss_isolated", false);
    m.bench_tokens = j.value("bench_tokens", 0), m.decode_bytes = j.value("decode_bytes", 0.0);
    m.prompt_tps = j.value("prompt_tps", 0.0), m.gen_tps = j.value("gen_tps", 0.0);
    m.ppl_error = j.value("ppl_error", "");
    m.ppl = j.value("ppl", 0.0), m.ppl_stderr = j.value("ppl_stderr", 0.0);
    m.bits_per_byte = j.value("bits_per_byte", 0.0);
    m.ppl_tokens = j.value("ppl_tokens", int64_t(0)),
    m.ppl_scored = j.value("ppl_scored", int64_t(0));
    m.ppl_ctx = j.value("ppl_ctx", 0);
    if (j.contains("routing")) m.routing = j["routing"];
    if (j.contains("top_k_sweep")) m.top_k_sweep = j["top_k_sweep"];
    if (j.contains("domains")) m.domains = j["domains"];
    m.top_k_sweep_note = j.value("top_k_sweep_note", "");
    m.domains_note = j.value("domains_note", "");
    if (j.contains("prompts") && j["prompts"].is_array())
        for (const auto& p : j["prompts"]) {
            PromptRun r;
            r.prompt = p.value("prompt", ""), r.output = p.value("output", ""),
            r.error = p.value("error", "");
            r.n_prompt = p.value("n_prompt", 0), r.n_generated = p.value("n_generated", 0);
            r.prompt_seconds = p.value("prompt_seconds", 0.0),
            r.gen_seconds = p.value("gen_seconds", 0.0);
            r.stopped_by_eog = p.value("stopped_by_eog", false);
            r.repeat_share = p.value("repeat_share", 0.0);
            if (p.contains("failures")) r.failures = p["failures"].get<std::vector<std::string>>();
            m.prompts.push_back(std::move(r));
        }
    return m;
}

}  // namespace

Result<ModelMeasures> measures_from_json(const json& j) {
    // json::value throws on a field of another type; nothing here lets it escape.
    try {
        return measures_from_json_or_throw(j);
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
