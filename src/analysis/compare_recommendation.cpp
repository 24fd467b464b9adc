#include "analysis/compare_recommendation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "analysis/routing_report.h"

namespace moe {

std::string compare_recommendation(const ModelMeasures& a, const ModelMeasures& b,
                                   uint64_t mem_available) {
    const ModelNames n = short_names(a, b);
    if (!a.error.empty() || !b.error.empty()) {
        std::string s;
        if (!a.error.empty()) s += fmt::format("{} could not be measured ({}). ", n.a, a.error);
        if (!b.error.empty()) s += fmt::format("{} could not be measured ({}). ", n.b, b.error);
        s += "No comparison can be made from one side.";
        return s;
    }
    std::vector<std::string> parts;
    // Speed.
    const bool a_fast = a.gen_tps >= b.gen_tps;
    const auto& F = a_fast ? a : b;
    const auto& S = a_fast ? b : a;
    const std::string fn = a_fast ? n.a : n.b, sn = a_fast ? n.b : n.a;
    const double speed_ratio = S.gen_tps > 0 ? F.gen_tps / S.gen_tps : INFINITY;
    parts.push_back(
        fmt::format("{} generates {:.2f}x faster than {} ({:.1f} vs {:.1f} tok/s, greedy).", fn,
                    speed_ratio, sn, F.gen_tps, S.gen_tps));
    // Per active parameter.
    const double ea = a.gen_tps * double(a.active_params), eb = b.gen_tps * double(b.active_params);
    const double active_ratio =
        F.active_params > 0 ? double(S.active_params) / double(F.active_params) : 0;
    parts.push_back(fmt::format(
        "Per active parameter {} is the faster one ({} vs {} param-tokens/s): {} activates {} "
        "parameters per token against {}'s {}, so active parameters alone predict a {:.2f}x speed "
        "ratio where {:.2f}x was measured{}.",
        ea >= eb ? n.a : n.b, human_count(std::max(ea, eb)), human_count(std::min(ea, eb)), fn,
        group_thousands(F.active_params), sn, group_thousands(S.active_params), active_ratio,
        speed_ratio,
        speed_ratio < active_ratio * 0.8
            ? " (the faster model pays an overhead beyond its active weights, "
              "e.g. routing or memory traffic)"
        : speed_ratio > active_ratio * 1.25 ? " (more than the parameter count explains)"
                                            : " (consistent with the parameter count)"));
    // Quality.
    int better_q = -1;  // 0 a, 1 b
    bool q_clear = false;
    double q_pct = 0;
    if (has_ppl(a) && has_ppl(b)) {
        if (same_tokens(a, b)) {
            better_q = a.ppl <= b.ppl ? 0 : 1;
            const double lo = std::min(a.ppl, b.ppl), hi = std::max(a.ppl, b.ppl);
            q_pct = (hi - lo) / hi * 100;
            const double se = std::sqrt(a.ppl_stderr * a.ppl_stderr + b.ppl_stderr * b.ppl_stderr);
            q_clear = hi - lo > 2 * se;
            parts.push_back(fmt::format(
                "{} has the lower perplexity on the evaluation text ({:.3f} vs {:.3f}, {:.1f}% "
                "lower), "
                "a difference {} two standard errors ({:.3f}).",
                better_q == 0 ? n.a : n.b, lo, hi, q_pct, q_clear ? "beyond" : "within", 2 * se));
        } else {
            better_q = a.bits_per_byte <= b.bits_per_byte ? 0 : 1;
            const double lo = std::min(a.bits_per_byte, b.bits_per_byte);
            const double hi = std::max(a.bits_per_byte, b.bits_per_byte);
            q_pct = hi > 0 ? (hi - lo) / hi * 100 : 0;
            q_clear = q_pct > 2;
            parts.push_back(fmt::format(
                "The vocabularies differ, so perplexities per token are not comparable; per byte "
                "of "
                "text {} predicts better ({:.4f} vs {:.4f} bits per byte, {:.1f}% lower).",
                better_q == 0 ? n.a : n.b, lo, hi, q_pct));
        }
    } else {
        parts.push_back("Perplexity could not be measured for both models.");
    }
    // Memory.
    auto fits = [&](const ModelMeasures& m) {
        return mem_available == 0 || m.rss_peak <= mem_available;
    };
    if (mem_available > 0) {
        const bool fa = fits(a), fb = fits(b);
        parts.push_back(
            fmt::format("Peak resident memory is {} for {} and {} for {}; with {} available {}.",
                        human_bytes(double(a.rss_peak)), n.a, human_bytes(double(b.rss_peak)), n.b,
                        human_bytes(double(mem_available)),
                        fa && fb ? "both fit"
                        : fa     ? "only " + n.a + " fits"
                        : fb     ? "only " + n.b + " fits"
                                 : "neither fits"));
    } else {
        parts.push_back(fmt::format("Peak resident memory is {} for {} and {} for {}.",
                                    human_bytes(double(a.rss_peak)), n.a,
                                    human_bytes(double(b.rss_peak)), n.b));
    }
    const int fa = failure_count(a), fb = failure_count(b);
    if (fa || fb)
        parts.push_back(
            fmt::format("Failures were seen in {} of {} answers of {} and {} of {} of {}.", fa,
                        a.prompts.size(), n.a, fb, b.prompts.size(), n.b));
    // Verdict.
    const int fast_idx = a_fast ? 0 : 1;
    const std::string qn = better_q == 0 ? n.a : n.b;
    std::string verdict;
    if (better_q < 0) {
        verdict = fmt::format("Without a quality measure for both, prefer {} for speed.", fn);
    } else if (speed_ratio < 1.05) {
        verdict = q_clear ? fmt::format(
                                "Both run at about the same speed, so the better {} is the "
                                "choice.",
                                qn)
                          : "Both run at about the same speed and their quality is "
                            "indistinguishable on this text: either will do; prefer the smaller "
                            "memory footprint.";
    } else if (better_q == fast_idx) {
        verdict = q_clear ? fmt::format("{} is both faster and better on this text: prefer it.", fn)
                          : fmt::format(
                                "{} is faster and no worse on this text (its lower perplexity "
                                "is within noise): prefer it.",
                                fn);
    } else if (!q_clear) {
        verdict = fmt::format(
            "The quality difference is not significant on this text, so the faster {} is the "
            "better "
            "choice.",
            fn);
    } else {
        verdict = fmt::format(
            "This is a trade-off: choose {} for speed ({:.2f}x) or {} for quality ({:.1f}% lower "
            "perplexity).",
            fn, speed_ratio, qn, q_pct);
    }
    const ModelMeasures& chosen =
        better_q >= 0 && better_q != fast_idx && q_clear ? (better_q == 0 ? a : b) : F;
    if (!fits(chosen)) verdict += " Note that it does not fit in the available memory.";
    parts.push_back(verdict);
    std::string s;
    for (const auto& p : parts) s += (s.empty() ? "" : " ") + p;
    return s;
}

}  // namespace moe
