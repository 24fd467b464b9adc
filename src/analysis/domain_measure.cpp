#include "analysis/domain_measure.h"

#include <fmt/core.h>

#include <algorithm>
#include <set>

#include "analysis/domain_routing.h"
#include "analysis/perplexity.h"
#include "analysis/routing_stats.h"
#include "core/input_file.h"
#include "runtime/session.h"

namespace moe {

Result<std::vector<DomainText>> parse_domain_args(const std::vector<std::string>& args) {
    std::vector<DomainText> out;
    std::set<std::string> seen;
    for (const auto& a : args) {
        const size_t eq = a.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == a.size())
            return make_error("--domain '{}': expected NAME=FILE", a);
        DomainText d{a.substr(0, eq), a.substr(eq + 1)};
        if (d.name.size() > 32 || !std::all_of(d.name.begin(), d.name.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
            }))
            return make_error(
                "--domain '{}': the name may hold letters, digits, '-' and '_' (at "
                "most 32)",
                a);
        if (!seen.insert(d.name).second)
            return make_error("--domain: the name '{}' is given twice (names must be distinct)",
                              d.name);
        out.push_back(std::move(d));
    }
    if (out.size() < 2)
        return make_error("--domain: give at least two domains to compare (got {})", out.size());
    return out;
}

Result<nlohmann::json> measure_domains(const Model& m, const Tokenizer& tok,
                                       const std::vector<DomainText>& domains,
                                       const DomainOptions& opt) {
    const ModelConfig& c = m.config;
    const int n_moe = c.n_moe_layers();
    if (n_moe == 0) return make_error("the model is dense (no MoE layers): it has no routing");
    if (domains.size() < 2) return make_error("at least two domains are needed");
    PerplexityOptions po;  // the window plan of eval
    po.n_ctx = opt.n_ctx;
    po.max_windows = opt.max_windows;
    po.bos = tok.add_bos() ? tok.bos() : -1;

    std::vector<std::vector<int32_t>> ids;
    std::vector<int> n_windows;
    for (const auto& d : domains) {
        MOE_TRY(const std::string text, read_input_file(d.file));
        if (text.empty()) return make_error("domain '{}': '{}' is empty", d.name, d.file);
        ids.push_back(tok.encode(text, true, false));
        auto plan = plan_windows(int64_t(ids.back().size()), po);
        if (!plan) return make_error("domain '{}' ('{}'): {}", d.name, d.file, plan.message());
        n_windows.push_back(plan->n_windows);
    }

    SessionOptions so;
    so.n_ctx = opt.n_ctx;
    so.n_batch = opt.n_ctx;
    so.n_threads = opt.n_threads;
    so.kv_types = opt.kv_types;
    MOE_TRY(const std::unique_ptr<Session> sess, Session::create(m, so));
    RoutingStats rs(m);
    std::vector<std::string> names;
    for (const auto& d : domains) names.push_back(d.name);
    DomainRouting dr(n_moe, c.moe.n_expert, c.moe.n_expert_used, names);
    std::vector<int32_t> win(size_t(opt.n_ctx));
    for (size_t d = 0; d < domains.size(); ++d)
        for (int w = 0; w < n_windows[d]; ++w) {
            std::copy(ids[d].begin() + int64_t(w) * opt.n_ctx,
                      ids[d].begin() + int64_t(w + 1) * opt.n_ctx, win.begin());
            if (po.bos >= 0) win[0] = po.bos;
            sess->reset();
            RouterTrace tr;
            MOE_TRY(auto logits, sess->eval_tokens(win, false, 0, &tr));
            (void)logits;
            MOE_TRY_VOID(rs.add_eval_tokens(tr, opt.n_ctx, opt.n_ctx, RoutingPhase::Prefill));
            MOE_TRY_VOID(dr.add(int(d), tr, opt.n_ctx, 1, opt.n_ctx));
        }
    nlohmann::json j = rs.to_json();
    nlohmann::json dj = dr.analyse(opt.n_permutations, opt.seed);
    std::vector<std::string> files;
    for (const auto& d : domains) files.push_back(d.file);
    dj["files"] = files;
    dj["windows"] = n_windows;
    dj["n_ctx"] = opt.n_ctx;
    j["domains"] = dj;
    return j;
}

std::string domains_text(const nlohmann::json& stats) {
    if (!stats.contains("domains")) return "";
    const auto& d = stats.at("domains");
    std::string out = fmt::format(
        "Jensen-Shannon divergence of expert load between domains (bits, mean over {} MoE "
        "layers; permutation test: {} shuffles of the domain labels over tokens, seed {}):\n",
        d.at("layers").size(), d.value("n_permutations", 0), d.value("seed", 0));
    for (const auto& p : d.at("pairs"))
        out += fmt::format(
            "  {:>12} vs {:<12} JS {:.4f}  p = {:.4g}  ({} of {} permutations at "
            "least as large)\n",
            p.value("a", std::string()), p.value("b", std::string()), p.value("js_mean", 0.0),
            p.value("p_value", 1.0), p.value("permutations_at_least", 0),
            d.value("n_permutations", 0));
    const auto& ov = d.at("overall");
    out += fmt::format("  all pairs: mean JS {:.4f}, p = {:.4g}\n", ov.value("js_mean", 0.0),
                       ov.value("p_value", 1.0));
    out += "Most over-represented experts (ratio of load shares; counts here / elsewhere):\n";
    for (const auto& od : d.at("over_represented")) {
        out += fmt::format("  {}:", od.value("domain", std::string()));
        int i = 0;
        for (const auto& it : od.at("experts")) {
            if (i++ == 3) break;
            out += fmt::format("  L{} e{} x{:.2f} ({:.0f} / {:.0f})", it.value("layer", 0),
                               it.value("expert", 0), it.value("ratio", 0.0),
                               it.value("count", 0.0), it.value("other_count", 0.0));
        }
        out += "\n";
    }
    return out;
}

}  // namespace moe
