// `moeinfer run [-m MODEL] -p "text" -n 64 [sampling options]`: generates and streams text, then
// prints load time, prompt tok/s and generation tok/s. Without -m it runs the bundled demo MoE.
#include <cstdio>
#include <memory>

#include "analysis/routing_stats.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/expert_parallel_options.h"
#include "core/atomic_file.h"
#include "core/sysinfo.h"
#include "formats/override_source.h"
#include "models/expert_store.h"
#include "models/model.h"
#include "runtime/generate.h"

namespace moe::cli {
namespace {

struct RunArgs {
    KvTypes kv;
    std::string model, prompt = "Once upon a time", routing_stats;
    std::vector<std::string> overrides;
    int n_predict = 64, threads = 0, ctx = 0;
    MemBudgetArgs budget;
    ExpertParallelArgs ep;
    SamplerParams sp;
};

int run_generate(RunArgs a) {
    if (auto j = join_expert_parallel(a.ep); !j) return report(j.message());
    if (auto ok = a.sp.validate(); !ok) return report(ok.message());
    if (a.model.empty()) a.model = default_model_path();
    const double t0 = now_seconds();
    auto src = open_model_source(a.model, a.overrides);
    if (!src) return report(src.message());
    auto model = load_model(*src);
    if (!model) return report(model.message());
    if (auto b = apply_mem_budget(**model, a.budget, a.ctx, 1, a.kv); !b)
        return report(b.message());
    auto ep = apply_expert_parallel(**model, a.ep);
    if (!ep) return report(ep.message());
    auto tok = Tokenizer::from_source(*(*model)->source);
    if (!tok) return report(fmt::format("{}: {}", a.model, tok.message()));
    SessionOptions so;
    so.n_threads = a.threads;
    so.kv_types = a.kv;
    so.n_ctx = a.ctx;
    auto session = Session::create(**model, so);
    if (!session) return report(session.message());
    Session& s = **session;
    const double load_s = now_seconds() - t0;

    const auto prompt = (*tok)->encode(a.prompt, /*add_bos=*/true, /*parse_special=*/true);
    if (prompt.empty()) return report("the prompt encodes to no tokens");
    Sampler sampler(a.sp);
    std::fputs(a.prompt.c_str(), stdout);
    std::fflush(stdout);
    std::unique_ptr<RoutingStats> rs;
    Result<void> route_ok;
    RoutingObserver observe;
    if (!a.routing_stats.empty()) {
        rs = std::make_unique<RoutingStats>(**model);
        observe = [&](const RouterTrace& t, int64_t n, bool prefill) {
            if (!route_ok) return;
            route_ok = rs->add_eval_tokens(t, n, so.n_batch,
                                           prefill ? RoutingPhase::Prefill : RoutingPhase::Decode);
        };
    }
    auto st = generate(
        s, **tok, prompt, a.n_predict, sampler,
        [](std::string_view piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return true;
        },
        0, observe);
    std::fputs("\n", stdout);
    if (!st) return report(st.message());
    if (!route_ok) return report(route_ok.message());
    if (rs) {
        rs->set_cache((*model)->experts->stats());
        auto j = rs->to_json();
        if (*ep) j["expert_parallel"] = expert_parallel_json(**ep);
        if (is_output_rank())
            if (auto w = write_file_atomic(a.routing_stats, j.dump(1) + "\n"); !w)
                return report(w.message());
    }
    if (*ep) {
        auto table = expert_parallel_table(**ep, st->prompt_seconds + st->gen_seconds);
        if (!table) return report(table.message());
        fmt::print(stderr, "{}", *table);
    }
    fmt::print(stderr, "\nmodel: {} ({}, {})\n", a.model, (*model)->config.family,
               (*model)->config.name);
    fmt::print(stderr, "load time: {:.1f} ms\n", load_s * 1e3);
    fmt::print(stderr, "prompt: {} tokens, {:.1f} tok/s\n", st->n_prompt,
               st->n_prompt / std::max(st->prompt_seconds, 1e-9));
    fmt::print(stderr, "generation: {} tokens, {:.1f} tok/s\n", st->n_generated,
               st->n_generated / std::max(st->gen_seconds, 1e-9));
    if (a.budget.gib > 0 || a.budget.slots > 0) {
        const ExpertLayerStats c = (*model)->experts->stats().total();
        const double acc = double(c.hits + c.misses), n = double(st->n_prompt + st->n_generated);
        if (acc > 0)
            fmt::print(stderr,
                       "expert cache: {:.1f}% hits, {:.2f} MB read/token, {:.2f} s stalled\n",
                       100.0 * double(c.hits) / acc, double(c.bytes_read) / 1e6 / std::max(n, 1.0),
                       c.stall_s);
        if (c.predicted > 0)
            fmt::print(stderr, "prefetch: {:.1f}% of {} predicted experts routed, {} hits\n",
                       100.0 * double(c.predicted_used) / double(c.predicted), c.predicted,
                       c.prefetch_hits);
        if (const auto pm = read_process_memory(); pm && a.budget.gib > 0)
            fmt::print(stderr, "peak memory (VmHWM): {:.1f} MiB of a {:.1f} MiB budget\n",
                       double(pm->peak_rss) / (1 << 20), a.budget.gib * 1024);
    }
    return 0;
}

}  // namespace

void register_run_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<RunArgs>();
    auto* cmd = app.add_subcommand("run", "generate text from a prompt");
    cmd->add_option("-m,--model", a->model, "GGUF file or HF folder (default: bundled demo MoE)");
    add_weight_memory_options(cmd);
    add_mem_budget_options(cmd, a->budget);
    add_kv_cache_options(cmd, a->kv);
    add_expert_parallel_options(cmd, a->ep);
    cmd->add_option("-p,--prompt", a->prompt, "prompt text");
    cmd->add_option("-n,--n-predict", a->n_predict, "tokens to generate")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
    cmd->add_option("-c,--ctx-size", a->ctx, "context size (default: model's, max 4096)")
        ->check(kContextRange);
    cmd->add_option("--override-kv", a->overrides,
                    "override metadata: KEY=TYPE:VALUE (int|float|bool|str)");
    add_sampling_options(cmd, a->sp);
    cmd->add_option("--routing-stats", a->routing_stats, "write routing statistics (JSON) here");
    cmd->callback([a, &exit_code] { exit_code = run_generate(*a); });
}

}  // namespace moe::cli
