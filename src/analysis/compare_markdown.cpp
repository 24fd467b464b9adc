#include <fmt/format.h>

#include <algorithm>

#include "analysis/compare_recommendation.h"
#include "analysis/compare_report.h"
#include "analysis/compare_rows.h"
#include "analysis/domain_measure.h"
#include "analysis/topk_sweep.h"

namespace moe {

namespace {

std::string md_cell(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '|')
            o += "\\|";
        else if (c == '\n')
            o += "<br>";
        else
            o += c;
    }
    return o;
}

std::string md_quote(const std::string& s) {
    if (s.empty()) return "> *(empty)*\n";
    std::string o = "> ";
    for (char c : s) {
        o += c;
        if (c == '\n') o += "> ";
    }
    return o + "\n";
}

}  // namespace

std::string compare_markdown(const ModelMeasures& a, const ModelMeasures& b,
                             const CompareOptions& o, uint64_t mem_available) {
    const ModelNames n = short_names(a, b);
    std::string s = fmt::format("# moeinfer compare: {} vs {}\n\n", n.a, n.b);
    s += fmt::format("- {}: `{}`\n- {}: `{}`\n\n", n.a, a.path, n.b, b.path);
    for (const auto* m : {&a, &b})
        if (!m->error.empty())
            s += fmt::format("**error** measuring `{}`: {}\n\n", m->path, m->error);
    s += fmt::format("| measure | {} | {} |\n|---|---|---|\n", md_cell(n.a), md_cell(n.b));
    for (const auto& r : measure_rows(a, b))
        s += fmt::format("| {} | {}{} | {}{} |\n", md_cell(r.label), md_cell(r.va),
                         r.better == 0 ? " ✓" : "", md_cell(r.vb), r.better == 1 ? " ✓" : "");
    s += "\n✓ marks the better value where one is better.\n\n## Recommendation\n\n";
    s += compare_recommendation(a, b, mem_available) + "\n\n## Prompts\n\n";
    const size_t np = std::max(a.prompts.size(), b.prompts.size());
    for (size_t i = 0; i < np; ++i) {
        const std::string p = i < a.prompts.size() ? a.prompts[i].prompt : b.prompts[i].prompt;
        s += fmt::format("### Prompt {}: `{}`\n\n", i + 1, p);
        for (int k = 0; k < 2; ++k) {
            const ModelMeasures& m = k == 0 ? a : b;
            if (i >= m.prompts.size()) continue;
            const PromptRun& r = m.prompts[i];
            s += fmt::format("**{}** — {}. Failures: {}.\n\n", k == 0 ? n.a : n.b, prompt_timing(r),
                             failures_text(r));
            s += md_quote(r.output) + "\n";
        }
    }
    for (int k = 0; k < 2; ++k) {
        const ModelMeasures& m = k == 0 ? a : b;
        const std::string& name = k == 0 ? n.a : n.b;
        if (!m.top_k_sweep.is_null())
            s += "## Top-k sweep: " + name + "\n\n" + m.top_k_sweep.value("summary", std::string()) +
                 "\n```\n" + sweep_table(m.top_k_sweep) + "```\n\n";
        else if (!m.top_k_sweep_note.empty())
            s += "## Top-k sweep: " + name + "\n\n" + m.top_k_sweep_note + ".\n\n";
        if (!m.domains.is_null())
            s += "## Expert specialisation by domain: " + name + "\n\n```\n" +
                 domains_text(m.domains) + "```\n\n";
        else if (!m.domains_note.empty())
            s += "## Expert specialisation by domain: " + name + "\n\n" + m.domains_note + ".\n\n";
    }
    s += "## Method\n\n";
    s += fmt::format(
        "- Each model is loaded and measured in its own child process, so peak RSS (VmHWM) is its "
        "own; it includes the memory-mapped weights that were touched.\n"
        "- Parameters: {}.\n"
        "- Prompt tok/s: one batch of the first tokens of the evaluation text (median of 3 runs); "
        "generation tok/s: greedy decoding of {} tokens per prompt, median over the prompts; "
        "threads: {}.\n"
        "- Weight bytes read per generated token: non-routed weights + one embedding row + the "
        "selected experts' weights (measured from the routing of the decode steps).\n"
        "- Perplexity: `{}` (King James Bible, Revelation 1–3, public domain), windows of up to {} "
        "tokens, each scoring the second half of its predictions. Bits per byte = mean NLL / ln 2 "
        "× "
        "tokens / bytes of the text.\n"
        "- Routing imbalance: max/mean and coefficient of variation of the expert loads per MoE "
        "layer, "
        "averaged over layers, over the benchmark batch and all prompts (prefill and decode).\n"
        "- Failures: empty output, invalid UTF-8, repetition loop (more than {:.0f}% of the "
        "generated 4-grams of tokens repeat an earlier one).\n",
        a.params_source.empty() ? b.params_source : a.params_source, o.n_predict,
        o.n_threads ? std::to_string(o.n_threads) : std::string("all-cores"), o.text_path,
        o.ppl_ctx, o.repeat_threshold * 100);
    return s;
}

}  // namespace moe
