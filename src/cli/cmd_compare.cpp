// `moeinfer compare [A B] [--prompts FILE] [-o report]`: measures two models (each in its own
// process) and writes report.md and a self-contained report.html. Without models it compares the
// bundled demo pair, models/demo-moe.gguf and models/demo-dense.gguf.
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "analysis/compare_measure.h"
#include "analysis/compare_recommendation.h"
#include "analysis/compare_report.h"
#include "analysis/compare_serving.h"
#include "analysis/params.h"
#include "analysis/routing_report.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/input_file.h"
#include "core/sysinfo.h"

namespace moe::cli {
namespace {

struct CompareArgs {
    std::vector<std::string> models;
    std::string prompts_file, output = "report", text, top_k_sweep = "1,2,4,all";
    std::vector<std::string> domains;
    bool no_isolate = false, default_domains = false, sweep = false, serve = false;
    CompareOptions o;
    ServingOptions serving;
};

Result<std::vector<std::string>> read_prompts(const std::string& path) {
    MOE_TRY(const std::string text, read_input_file(path, uint64_t(16) << 20));
    std::istringstream f(text);
    std::vector<std::string> out;
    std::string line;
    while (std::getline(f, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") != std::string::npos) out.push_back(line);
    }
    if (out.empty()) return make_error("the prompts file '{}' holds no prompt", path);
    return out;
}

int run_compare(CompareArgs a) {
    if (a.models.size() == 1) return report("compare needs two models (or none for the demo pair)");
    if (auto ok = check_compare_options(a.o); !ok) return report(ok.message());
    if (a.models.empty())
        a.models = {default_model_path("demo-moe.gguf"), default_model_path("demo-dense.gguf")};
    for (const auto& m : a.models)
        if (!std::filesystem::exists(m)) return report(fmt::format("model '{}' not found", m));
    if (!a.prompts_file.empty()) {
        auto p = read_prompts(a.prompts_file);
        if (!p) return report(p.message());
        a.o.prompts = *p;
    }
    a.o.text_path = a.text.empty() ? default_eval_text_path() : a.text;
    if (!std::filesystem::exists(a.o.text_path))
        return report(fmt::format("evaluation text '{}' not found", a.o.text_path));
    a.o.isolate = !a.no_isolate;
    if (a.sweep) a.o.top_k_sweep = a.top_k_sweep;
    if (a.default_domains && !a.domains.empty())
        return report("--domains (the bundled texts) and --domain NAME=FILE cannot be combined");
    if (a.default_domains) a.o.domains = default_domain_texts();
    if (!a.domains.empty()) {
        auto d = parse_domain_args(a.domains);
        if (!d) return report(d.message());
        a.o.domains = *d;
    }
    for (const auto& d : a.o.domains)  // fail before the long measurements
        if (!std::filesystem::exists(d.file))
            return report(fmt::format("domain '{}': '{}' not found", d.name, d.file));
    std::string base = a.output;
    for (const char* ext : {".md", ".html"}) {
        const std::string e = ext;
        if (base.size() > e.size() && base.compare(base.size() - e.size(), e.size(), e) == 0)
            base.resize(base.size() - e.size());
    }
    // Fail on an unwritable destination before the long measurements.
    if (auto w = write_text_file(base + ".md", ""); !w) return report(w.message());

    std::vector<ModelMeasures> ms;
    for (const auto& m : a.models) {
        fmt::print(stderr, "measuring {} ...\n", m);
        ms.push_back(a.o.isolate ? measure_model_isolated(m, a.o) : measure_model(m, a.o));
        if (!ms.back().error.empty()) fmt::print(stderr, "warning: {}\n", ms.back().error);
    }
    const auto mi = read_meminfo();
    const uint64_t avail = mi ? mi->available : 0;
    std::string md = compare_markdown(ms[0], ms[1], a.o, avail);
    std::string html = compare_html(ms[0], ms[1], a.o, avail);
    if (a.serve) {
        a.serving.threads = a.o.n_threads;
        std::vector<ServingRun> runs;
        for (const auto& m : a.models) {
            fmt::print(stderr, "serving {} ...\n", m);
            runs.push_back(measure_serving(m, a.serving));
            if (!runs.back().error.empty()) fmt::print(stderr, "warning: {}\n", runs.back().error);
        }
        md += serving_markdown(ms[0], runs[0], ms[1], runs[1]);
        const size_t end = html.rfind("</body>");
        html.insert(end == std::string::npos ? html.size() : end,
                    serving_html(ms[0], runs[0], ms[1], runs[1]));
    }
    if (auto w = write_text_file(base + ".md", md); !w) return report(w.message());
    if (auto w = write_text_file(base + ".html", html); !w) return report(w.message());
    fmt::print("{}\n", compare_recommendation(ms[0], ms[1], avail));
    fmt::print(stderr, "wrote {}.md and {}.html\n", base, base);
    if (!ms[0].error.empty() && !ms[1].error.empty())
        return report("neither model could be measured");
    return 0;
}

}  // namespace

void register_compare_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<CompareArgs>();
    auto* cmd =
        app.add_subcommand("compare", "measure two models side by side (Markdown + HTML report)");
    cmd->add_option("models", a->models,
                    "two GGUF files or HF folders (default: the bundled demo pair)")
        ->expected(0, 2);
    cmd->add_option("--prompts", a->prompts_file,
                    "prompts, one per line (default: three built in)");
    cmd->add_option("-o,--output", a->output, "report path without extension (default: report)");
    cmd->add_option("-n,--n-predict", a->o.n_predict, "tokens generated per prompt")
        ->check(CLI::Range(0, 1 << 16));
    cmd->add_option("-t,--threads", a->o.n_threads, "threads (default: all cores)");
    add_kv_cache_options(cmd, a->o.kv_types);
    cmd->add_option("--text", a->text, "perplexity text (default: data/eval-kjv.txt)");
    cmd->add_option("--ppl-ctx", a->o.ppl_ctx, "perplexity window in tokens")
        ->check(CLI::Range(1, 1 << 16));
    cmd->add_option("--ppl-windows", a->o.ppl_windows,
                    "perplexity windows (default: the whole text)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--bench-tokens", a->o.bench_tokens, "tokens of the prompt-speed batch")
        ->check(CLI::Range(1, 1 << 15));
    cmd->add_flag("--no-isolate", a->no_isolate, "measure both models in this process");
    cmd->add_flag("--top-k-sweep", a->sweep,
                  "top-k sweep of the MoE model on the perplexity windows");
    cmd->add_option("--sweep-k", a->top_k_sweep,
                    "the k of --top-k-sweep (default 1,2,4,all; the native k is always added)");
    cmd->add_option("--sweep-decode-tokens", a->o.sweep_decode_tokens,
                    "tokens decoded one by one per k in the sweep (default 64)")
        ->check(CLI::Range(0, 4096));
    cmd->add_flag("--domains", a->default_domains,
                  "routing per domain of the MoE model on the bundled texts (data/domain-*.txt)");
    cmd->add_option("--domain", a->domains, "routing per domain: NAME=FILE (repeat, at least two)");
    cmd->add_option("--domain-ctx", a->o.domain_opt.n_ctx, "domain window in tokens (default 256)")
        ->check(CLI::Range(4, 65536));
    cmd->add_option("--permutations", a->o.domain_opt.n_permutations,
                    "label shuffles of the domains' permutation test (default 1000)")
        ->check(CLI::Range(1, 1000000));
    cmd->add_flag("--serve", a->serve,
                  "add a serving section: each model behind `moeinfer serve` under load");
    cmd->add_option("--serve-concurrency", a->serving.concurrency,
                    "--serve: concurrency levels (default 1,2,4,8)")
        ->delimiter(',')
        ->check(CLI::Range(1, 256));
    cmd->add_option("--serve-max-tokens", a->serving.max_tokens, "--serve: tokens per request")
        ->check(CLI::Range(1, 4096));
    cmd->callback([a, &exit_code] { exit_code = run_compare(*a); });
}

}  // namespace moe::cli
