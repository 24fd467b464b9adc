// `moeinfer bench-serve --url URL | -m MODEL [serve options] [--concurrency 1,2,4,8,16] ...`:
// load on an OpenAI-compatible server (analysis/serve_bench.h). With -m it starts
// `moeinfer serve --port 0` on the model as a child process and stops it afterwards.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "analysis/serve_bench.h"
#include "analysis/serve_bench_report.h"
#include "analysis/serve_child.h"
#include "analysis/serve_determinism.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace moe::cli {
namespace {

struct BenchServeArgs {
    std::string url, model_path;
    ServeBenchOptions bench;
    std::string concurrency = "1,2,4,8,16";
    bool json = false, progress = false, deterministic_check = false;
    // Forwarded to the child server (-m).
    int n_slots = 16, ctx = 0, step_tokens = 0, threads = 0;
    int64_t kv_tokens = 0;
    bool deterministic = false;
    std::string mem_budget, cache_type_k, cache_type_v;  // as given
    std::vector<std::string> serve_args;
};

// "1,2,4": positive integers separated by commas, nothing else.
Result<std::vector<int>> parse_int_list(const std::string& s, const char* option) {
    std::vector<int> out;
    size_t start = 0;
    for (;;) {
        const size_t comma = s.find(',', start);
        const std::string item = s.substr(start, comma - start);
        char* end = nullptr;
        const long v = item.empty() ? 0 : std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || item[0] == '-' || item[0] == '+')
            return make_error("{} '{}': '{}' is not a number", option, s, item);
        if (v < 1 || v > 4096) return make_error("{} '{}': {} is not in 1..4096", option, s, item);
        out.push_back(int(v));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

// A progress bar on one stderr line, redrawn in place.
void draw_progress(const std::vector<int>& levels, int level, int done, int total) {
    constexpr int kWidth = 30;
    const int filled = total > 0 ? done * kWidth / total : kWidth;
    std::fprintf(stderr, "\rconcurrency %4d (%zu/%zu) [%.*s%*s] %d/%d", levels[size_t(level)],
                 size_t(level) + 1, levels.size(), filled, "##############################",
                 kWidth - filled, "", done, total);
    if (done == total) std::fputc('\n', stderr);
    std::fflush(stderr);
}

std::vector<std::string> child_args(const BenchServeArgs& a) {
    std::vector<std::string> v = {"-m", a.model_path, "--parallel", std::to_string(a.n_slots)};
    if (a.ctx > 0) v.insert(v.end(), {"-c", std::to_string(a.ctx)});
    if (a.step_tokens > 0) v.insert(v.end(), {"--step-tokens", std::to_string(a.step_tokens)});
    if (a.threads > 0) v.insert(v.end(), {"-t", std::to_string(a.threads)});
    if (a.kv_tokens > 0) v.insert(v.end(), {"--kv-tokens", std::to_string(a.kv_tokens)});
    if (a.deterministic) v.push_back("--deterministic");
    if (!a.mem_budget.empty()) v.insert(v.end(), {"--mem-budget", a.mem_budget});
    if (!a.cache_type_k.empty()) v.insert(v.end(), {"--cache-type-k", a.cache_type_k});
    if (!a.cache_type_v.empty()) v.insert(v.end(), {"--cache-type-v", a.cache_type_v});
    if (!a.bench.api_key.empty()) v.insert(v.end(), {"--api-key", a.bench.api_key});
    v.insert(v.end(), a.serve_args.begin(), a.serve_args.end());
    return v;
}

int run_bench_serve(BenchServeArgs a) {
    if (a.url.empty() == a.model_path.empty())
        return report("bench-serve needs exactly one of --url URL and -m MODEL");
    auto levels = parse_int_list(a.concurrency, "--concurrency");
    if (!levels) return report(levels.message());
    a.bench.concurrency = *levels;

    std::unique_ptr<ServeChild> child;
    if (!a.model_path.empty()) {
        auto c = ServeChild::start(child_args(a));
        if (!c) return report(c.message());
        child = std::move(*c);
        a.bench.url = ServerUrl{"127.0.0.1", child->port(), ""};
    } else {
        auto u = parse_server_url(a.url);
        if (!u) return report(u.message());
        a.bench.url = *u;
    }
    if (a.progress || isatty(2))
        a.bench.progress = [levels = *levels](int level, int done, int total) {
            draw_progress(levels, level, done, total);
        };

    if (a.deterministic_check) {
        ServeBenchOptions o = a.bench;
        o.temperature = 0;
        int n = o.requests > 0 ? o.requests : *std::max_element(levels->begin(), levels->end());
        if (o.progress)
            o.progress = [n](int level, int done, int total) {
                draw_progress({1, n}, level, done, total);
            };
        auto d = run_determinism_check(o, n);
        if (!d) return report(d.message());
        if (a.json) {
            fmt::print("{}\n", determinism_json(*d).dump(2));
        } else {
            fmt::print("deterministic check: {} requests alone, then {} at once (greedy)\n",
                       d->requests, d->requests);
            fmt::print("  failed requests: {}{}\n", d->failures,
                       d->first_error.empty() ? "" : " (" + d->first_error + ")");
            fmt::print("  greedy text differs: {} of {} ({:.1f}%)\n", d->text_differs, d->requests,
                       100 * d->text_share());
            if (d->logprobs_available)
                fmt::print("  logprobs not bitwise equal: {} of {}\n", d->logprobs_differ,
                           d->requests);
            if (d->routing_available)
                fmt::print("  expert choice differs: {} of {} (layer, token) ({:.2f}%)\n",
                           d->routing_differs, d->routing_compared, 100 * d->routing_share());
            else
                fmt::print("  expert choice: not compared (the server sends no moe_routing)\n");
        }
        return d->failures > 0 ? 1 : 0;
    }

    auto r = run_serve_bench(a.bench);
    if (!r) return report(r.message());
    // A level's first failure on stderr in both modes, so a --json run in a script shows why.
    for (const auto& L : r->levels)
        if (L.failures > 0)
            fmt::print(stderr, "concurrency {}: {} of {} requests failed, first: {}\n",
                       L.concurrency, L.failures, L.requests, L.first_error);
    if (a.json) {
        fmt::print("{}\n", serve_bench_json(*r, a.bench).dump(2));
    } else {
        fmt::print("{}", serve_bench_table(*r));
        for (const auto& L : r->levels) {
            if (L.usage_missing > 0)
                fmt::print(
                    "concurrency {}: {} requests had no usage (tokens counted from chunks)\n",
                    L.concurrency, L.usage_missing);
            if (L.count_mismatches > 0)
                fmt::print("concurrency {}: {} requests streamed more chunks than usage counted\n",
                           L.concurrency, L.count_mismatches);
        }
    }
    return 0;
}

}  // namespace

void register_bench_serve_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<BenchServeArgs>();
    auto* cmd = app.add_subcommand("bench-serve", "load test of an OpenAI-compatible server");
    cmd->add_option("--url", a->url, "server to load, e.g. http://127.0.0.1:8080");
    cmd->add_option("-m", a->model_path, "start `moeinfer serve` on this model and load it");
    cmd->add_option("--concurrency", a->concurrency, "concurrent request streams per level")
        ->capture_default_str();
    cmd->add_option("--requests", a->bench.requests,
                    "requests per level (default: --requests-per-client x concurrency)")
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--requests-per-client", a->bench.requests_per_client,
                    "requests per concurrent stream")
        ->check(CLI::Range(1, 1 << 16))
        ->capture_default_str();
    cmd->add_option("--prompt-tokens", a->bench.prompt_words,
                    "prompt length in common English words")
        ->check(CLI::Range(1, 1 << 16))
        ->capture_default_str();
    cmd->add_option("--max-tokens", a->bench.max_tokens, "tokens to generate per request")
        ->check(CLI::Range(1, 1 << 20))
        ->capture_default_str();
    cmd->add_option("--seed", a->bench.seed, "prompt words")->capture_default_str();
    cmd->add_option("--temp", a->bench.temperature, "sampling temperature (0: greedy)")
        ->check(CLI::Range(0.0, 2.0))
        ->capture_default_str();
    cmd->add_option("--model", a->bench.model, "the requests' model field");
    cmd->add_option("--api-key", a->bench.api_key, "sent as 'Authorization: Bearer KEY'")
        ->envname("MOEINFER_API_KEY");
    cmd->add_option("--connect-timeout", a->bench.connect_timeout_s, "seconds")
        ->check(CLI::Range(0.1, 600.0))
        ->capture_default_str();
    cmd->add_option("--timeout", a->bench.read_timeout_s, "longest silence of a response, s")
        ->check(CLI::Range(1.0, 86400.0))
        ->capture_default_str();
    cmd->add_flag("--json", a->json, "print JSON instead of the table");
    cmd->add_flag("--progress", a->progress, "progress bar on stderr even when it is no TTY");
    cmd->add_flag("--deterministic-check", a->deterministic_check,
                  "share of greedy requests whose text (and expert choices) differ between "
                  "single-request and batched runs");
    // Options of the child server (-m).
    cmd->add_option("--parallel", a->n_slots, "-m: the server's -np")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    cmd->add_option("-c,--ctx-size", a->ctx, "-m: the server's context per sequence")
        ->check(kContextRange);
    cmd->add_option("--step-tokens,--batch-size", a->step_tokens,
                    "-m: the server's tokens per step (its --step-tokens)")
        ->check(CLI::Range(1, 1 << 16));
    cmd->add_option("-t,--threads", a->threads, "-m: the server's compute threads")
        ->check(CLI::Range(1, 1024));
    cmd->add_option("--kv-tokens", a->kv_tokens, "-m: the server's KV pool size")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--deterministic", a->deterministic, "-m: serve with --deterministic");
    cmd->add_option("--mem-budget", a->mem_budget, "-m: the server's --mem-budget GiB")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--cache-type-k", a->cache_type_k, "-m: the server's KV key type")
        ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}, CLI::ignore_case));
    cmd->add_option("--cache-type-v", a->cache_type_v, "-m: the server's KV value type")
        ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}, CLI::ignore_case));
    cmd->add_option("--serve-arg", a->serve_args, "-m: one more argument for serve (repeatable)");
    cmd->callback([a, &exit_code] { exit_code = run_bench_serve(*a); });
}

}  // namespace moe::cli
