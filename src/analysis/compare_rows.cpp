#include "analysis/compare_rows.h"

#include <fmt/format.h>

#include <cmath>

#include "analysis/routing_report.h"

namespace moe {

namespace {

double imbalance(const ModelMeasures& m, const char* key) {
    if (m.routing.is_null() || !m.routing.contains("summary")) return NAN;
    return m.routing["summary"].value(key, NAN);
}

int pick(double a, double b, bool higher_better) {
    if (!std::isfinite(a) || !std::isfinite(b) || a == b) return -1;
    return (a > b) == higher_better ? 0 : 1;
}

}  // namespace

std::vector<CompareRow> measure_rows(const ModelMeasures& a, const ModelMeasures& b) {
    std::vector<CompareRow> rows;
    auto both = [&](const std::string& label, auto f, int better = -1) {
        rows.push_back({label, a.error.empty() ? f(a) : "—", b.error.empty() ? f(b) : "—", better});
    };
    both("family / architecture", [](const ModelMeasures& m) {
        std::string s = m.family + " (" + m.arch + ")";
        if (m.n_moe_layers)
            s += fmt::format(", {} experts top-{} in {} layers", m.n_expert, m.n_expert_used,
                             m.n_moe_layers);
        else
            s += ", dense";
        return s;
    });
    both("total parameters",
         [](const ModelMeasures& m) { return group_thousands(m.total_params); });
    both(
        "active parameters / token",
        [](const ModelMeasures& m) { return group_thousands(m.active_params); },
        pick(double(a.active_params), double(b.active_params), false));
    both(
        "disk size", [](const ModelMeasures& m) { return human_bytes(double(m.disk_bytes)); },
        pick(double(a.disk_bytes), double(b.disk_bytes), false));
    both(
        "load time",
        [](const ModelMeasures& m) { return fmt::format("{:.1f} ms", m.load_seconds * 1e3); },
        pick(a.load_seconds, b.load_seconds, false));
    both(
        "peak RSS",
        [](const ModelMeasures& m) {
            return human_bytes(double(m.rss_peak)) +
                   (m.rss_isolated ? "" : " (process, not isolated)");
        },
        pick(double(a.rss_peak), double(b.rss_peak), false));
    both(
        "prompt tok/s",
        [](const ModelMeasures& m) {
            return fmt::format("{:.1f} ({}-token batch, median of 3)", m.prompt_tps,
                               m.bench_tokens);
        },
        pick(a.prompt_tps, b.prompt_tps, true));
    both(
        "generation tok/s (median of prompts)",
        [](const ModelMeasures& m) { return fmt::format("{:.1f}", m.gen_tps); },
        pick(a.gen_tps, b.gen_tps, true));
    both(
        "generation tok/s × active params",
        [](const ModelMeasures& m) {
            return fmt::format("{} param-tokens/s",
                               human_count(m.gen_tps * double(m.active_params)));
        },
        pick(a.gen_tps * double(a.active_params), b.gen_tps * double(b.active_params), true));
    const bool cmp_ppl = has_ppl(a) && has_ppl(b) && same_tokens(a, b);
    both(
        "perplexity (eval text)",
        [](const ModelMeasures& m) {
            if (!m.ppl_error.empty()) return "error: " + m.ppl_error;
            return fmt::format("{:.3f} ± {:.3f} ({} tokens scored, window {})", m.ppl, m.ppl_stderr,
                               m.ppl_scored, m.ppl_ctx);
        },
        cmp_ppl ? pick(a.ppl, b.ppl, false) : -1);
    both(
        "bits per byte (eval text)",
        [](const ModelMeasures& m) {
            return m.ppl_error.empty() ? fmt::format("{:.4f}", m.bits_per_byte) : std::string("—");
        },
        has_ppl(a) && has_ppl(b) ? pick(a.bits_per_byte, b.bits_per_byte, false) : -1);
    both(
        "routing imbalance (max/mean, CV)",
        [](const ModelMeasures& m) {
            if (m.routing.is_null()) return std::string("dense (no routing)");
            return fmt::format("{:.2f} / {:.3f} (worst layer {:.2f})",
                               imbalance(m, "mean_max_over_mean"), imbalance(m, "mean_cv"),
                               imbalance(m, "max_max_over_mean"));
        },
        pick(imbalance(a, "mean_max_over_mean"), imbalance(b, "mean_max_over_mean"), false));
    both(
        "weight bytes read / generated token",
        [](const ModelMeasures& m) { return human_bytes(m.decode_bytes); },
        pick(a.decode_bytes, b.decode_bytes, false));
    both(
        "prompts with failures",
        [](const ModelMeasures& m) {
            return fmt::format("{} of {}", failure_count(m), m.prompts.size());
        },
        pick(failure_count(a), failure_count(b), false));
    return rows;
}

std::string prompt_timing(const PromptRun& p) {
    return fmt::format(
        "{} prompt tokens in {:.1f} ms; {} tokens generated in {:.1f} ms ({:.1f} tok/s){}",
        p.n_prompt, p.prompt_seconds * 1e3, p.n_generated, p.gen_seconds * 1e3,
        p.gen_seconds > 0 ? p.n_generated / p.gen_seconds : 0.0,
        p.stopped_by_eog ? ", stopped at end of text" : "");
}

std::string failures_text(const PromptRun& p) {
    if (p.failures.empty()) return "none";
    std::string s;
    for (const auto& f : p.failures) s += (s.empty() ? "" : "; ") + f;
    return s;
}

}  // namespace moe
