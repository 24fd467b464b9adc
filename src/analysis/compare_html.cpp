#include <fmt/format.h>

#include <algorithm>

#include "analysis/compare_recommendation.h"
#include "analysis/compare_report.h"
#include "analysis/compare_rows.h"
#include "analysis/domain_routing.h"
#include "analysis/routing_report.h"
#include "analysis/sweep_report.h"

namespace moe {

std::string compare_html(const ModelMeasures& a, const ModelMeasures& b, const CompareOptions& o,
                         uint64_t mem_available) {
    const ModelNames n = short_names(a, b);
    const std::string ca = "#2c7fb8", cb = "#f28e2b";
    std::string h =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
        html_escape("moeinfer compare: " + n.a + " vs " + n.b) + "</title>\n<style>" +
        report_css() + "</style>\n</head>\n<body>\n";
    h += "<h1>" + html_escape("Compare: " + n.a + " vs " + n.b) + "</h1>\n";
    h += "<p class=\"note\">" + html_escape(a.path) + " &nbsp;vs&nbsp; " + html_escape(b.path) +
         "</p>\n";
    for (const auto* m : {&a, &b})
        if (!m->error.empty())
            h += "<p class=\"bad\">error measuring " + html_escape(m->path) + ": " +
                 html_escape(m->error) + "</p>\n";

    // Key charts.
    auto chart = [&](const std::string& title, const std::string& unit, double va, double vb,
                     int digits) {
        BarChartOptions op;
        op.title = title;
        op.y_label = unit;
        op.width = 270;
        op.height = 230;
        op.digits = digits;
        return "<div class=\"chart\">" +
               bar_chart_svg({""}, {{n.a, ca, {va}}, {n.b, cb, {vb}}}, op) + "</div>\n";
    };
    h += "<h2>Key measures</h2>\n<div class=\"charts\">\n";
    h += chart("generation speed", "tok/s", a.gen_tps, b.gen_tps, 1);
    h += chart("prompt speed", "tok/s", a.prompt_tps, b.prompt_tps, 0);
    if (has_ppl(a) && has_ppl(b)) {
        if (same_tokens(a, b))
            h += chart("perplexity (lower is better)", "perplexity", a.ppl, b.ppl, 2);
        else
            h += chart("bits per byte (lower is better)", "bits/byte", a.bits_per_byte,
                       b.bits_per_byte, 3);
    }
    h += chart("active params / token", "millions", double(a.active_params) / 1e6,
               double(b.active_params) / 1e6, 2);
    h +=
        chart("peak RSS", "MiB", double(a.rss_peak) / 1048576.0, double(b.rss_peak) / 1048576.0, 1);
    h += "</div>\n";

    h += "<h2>Measures</h2>\n<table>\n<tr><th>measure</th><th>" + html_escape(n.a) + "</th><th>" +
         html_escape(n.b) + "</th></tr>\n";
    for (const auto& r : measure_rows(a, b))
        h += "<tr><td>" + html_escape(r.label) + "</td><td class=\"num" +
             (r.better == 0 ? " better" : "") + "\">" + html_escape(r.va) + "</td><td class=\"num" +
             (r.better == 1 ? " better" : "") + "\">" + html_escape(r.vb) + "</td></tr>\n";
    h += "</table>\n<p class=\"note\">Green: the better value where one is better.</p>\n";

    h += "<h2>Recommendation</h2>\n<p>" + html_escape(compare_recommendation(a, b, mem_available)) +
         "</p>\n";

    h += "<h2>Prompts</h2>\n<table>\n<tr><th>prompt</th><th>" + html_escape(n.a) + "</th><th>" +
         html_escape(n.b) + "</th></tr>\n";
    const size_t np = std::max(a.prompts.size(), b.prompts.size());
    for (size_t i = 0; i < np; ++i) {
        const std::string p = i < a.prompts.size() ? a.prompts[i].prompt : b.prompts[i].prompt;
        h += "<tr><td>" + html_escape(p) + "</td>";
        for (const auto* m : {&a, &b}) {
            if (i >= m->prompts.size()) {
                h += "<td></td>";
                continue;
            }
            const PromptRun& r = m->prompts[i];
            h += "<td><pre>" + html_escape(r.output.empty() ? "(empty)" : r.output) + "</pre>";
            h += "<p class=\"note\">" + html_escape(prompt_timing(r)) + "</p>";
            h += std::string("<p class=\"") + (r.failures.empty() ? "ok" : "bad") +
                 "\">failures: " + html_escape(failures_text(r)) + "</p></td>";
        }
        h += "</tr>\n";
    }
    h += "</table>\n";

    for (int k = 0; k < 2; ++k) {
        const ModelMeasures& m = k == 0 ? a : b;
        if (m.routing.is_null() || !m.routing.contains("layers")) continue;
        h += "<h2>Routing: " + html_escape(k == 0 ? n.a : n.b) + "</h2>\n";
        h += routing_report_sections(m.routing, k == 0 ? "a-" : "b-");
    }
    for (int k = 0; k < 2; ++k) {  // what the extra experts buy: the sweep and the domains
        const ModelMeasures& m = k == 0 ? a : b;
        const std::string& name = k == 0 ? n.a : n.b;
        if (!m.top_k_sweep.is_null())
            h += sweep_report_section(m.top_k_sweep, "Top-k sweep: " + name);
        else if (!m.top_k_sweep_note.empty())
            h += "<h2>Top-k sweep: " + html_escape(name) + "</h2>\n<p class=\"note\">" +
                 html_escape(m.top_k_sweep_note) + ".</p>\n";
        if (!m.domains.is_null())
            h += domains_report_section(m.domains);
        else if (!m.domains_note.empty())
            h += "<h2>Expert specialisation by domain: " + html_escape(name) +
                 "</h2>\n<p class=\"note\">" + html_escape(m.domains_note) + ".</p>\n";
    }
    h +=
        "<h2>Method</h2>\n<p class=\"note\">" +
        html_escape(fmt::format(
            "Each model is measured in its own child process (peak RSS = its VmHWM, mapped weights "
            "included). Prompt tok/s: one batch of the evaluation text; generation: greedy, {} "
            "tokens "
            "per prompt. Perplexity: {} (KJV Revelation 1-3, public domain), windows of up to {} "
            "tokens scoring their second half. Failures: empty output, invalid UTF-8, more than "
            "{:.0f}% repeated token 4-grams.",
            o.n_predict, o.text_path, o.ppl_ctx, o.repeat_threshold * 100)) +
        "</p>\n";
    h += "</body>\n</html>\n";
    return h;
}

}  // namespace moe
