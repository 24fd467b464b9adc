// `moeinfer routing-stats -m MODEL --domain NAME=FILE --domain NAME=FILE ... [-o stats.json]
// [--html report.html]`: routing recorded separately per text (analysis/domain_measure.h): the
// routing statistics of all of them plus the domains section (per-layer load per domain,
// Jensen-Shannon divergences with a permutation test, over-represented experts).
#include <fmt/core.h>

#include <memory>

#include "analysis/domain_measure.h"
#include "analysis/routing_report.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "models/model.h"
#include "models/top_k.h"
#include "tokenizer/tokenizer.h"

namespace moe::cli {
namespace {

struct RoutingStatsArgs {
    std::string model, output = "routing-stats.json", html;
    std::vector<std::string> domains;
    DomainOptions opt;
    int top_k = 0;
    MemBudgetArgs budget;
};

int run_routing_stats(const RoutingStatsArgs& a) {
    auto domains = parse_domain_args(a.domains);
    if (!domains) return report(domains.message());
    auto model = load_model(a.model);
    if (!model) return report(model.message());
    if (auto b = apply_mem_budget(**model, a.budget, 0, 1, a.opt.kv_types); !b)
        return report(b.message());
    if (a.top_k > 0)
        if (auto o = override_top_k((*model)->config, a.top_k); !o)
            return report(fmt::format("--top-k: {}", o.message()));
    auto tok = Tokenizer::from_source(*(*model)->source);
    if (!tok) return report(fmt::format("{}: {}", a.model, tok.message()));
    auto stats = measure_domains(**model, **tok, *domains, a.opt);
    if (!stats) return report(stats.message());
    (*stats)["model"]["path"] = a.model;
    if (auto w = write_text_file(a.output, stats->dump(1) + "\n"); !w) return report(w.message());
    fmt::print(stderr, "wrote {}\n", a.output);
    if (!a.html.empty()) {
        if (auto w = write_text_file(a.html, routing_report_html(*stats)); !w)
            return report(w.message());
        fmt::print(stderr, "wrote {}\n", a.html);
    }
    fmt::print("{}", domains_text(*stats));
    return 0;
}

}  // namespace

void register_routing_stats_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<RoutingStatsArgs>();
    auto* cmd = app.add_subcommand(
        "routing-stats", "routing per domain text: expert load, JS divergence, permutation test");
    cmd->add_option("-m,--model", a->model, "GGUF file or Hugging Face folder")->required();
    add_weight_memory_options(cmd);
    add_mem_budget_options(cmd, a->budget);
    add_kv_cache_options(cmd, a->opt.kv_types);
    cmd->add_option("--domain", a->domains, "NAME=FILE, one per domain (at least two)")->required();
    cmd->add_option(
        "-o,--output", a->output,
        "statistics JSON to write (default routing-stats.json; routing-report reads it)");
    cmd->add_option("--html", a->html, "also write the routing report (HTML) here");
    cmd->add_option("-c,--ctx", a->opt.n_ctx, "window length in tokens (default 256)")
        ->check(CLI::Range(4, 65536));
    cmd->add_option("--windows", a->opt.max_windows, "at most this many windows per domain")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--permutations", a->opt.n_permutations,
                    "label shuffles of the permutation test (default 1000)")
        ->check(CLI::Range(1, 1000000));
    cmd->add_option("--seed", a->opt.seed, "seed of the permutation test (default 1)");
    cmd->add_option("--top-k", a->top_k,
                    "route this many experts per token instead of the native k")
        ->check(CLI::PositiveNumber);
    cmd->add_option("-t,--threads", a->opt.n_threads, "threads (default: all cores)");
    cmd->callback([a, &exit_code] { exit_code = run_routing_stats(*a); });
}

}  // namespace moe::cli
