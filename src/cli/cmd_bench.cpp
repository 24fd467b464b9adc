// `moeinfer bench -m FILE [-p 512] [-n 128] [-t N] [-r 5] [--json]`: prompt-processing and
// generation throughput like the upstream llama-bench (see runtime/bench.h). -p, -n and -t take
// comma lists; the Markdown table (default) or a JSON array (--json) goes to stdout.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/expert_parallel_options.h"
#include "core/sysinfo.h"
#include "models/expert_cache.h"
#include "models/model.h"
#include "runtime/bench.h"
#include "runtime/decode_prediction.h"

namespace moe::cli {
namespace {

constexpr int kMaxBenchTokens = 32768;  // per test; the context is sized to -p + -n

struct BenchArgs {
    KvTypes kv;
    std::string model, prompt = "512", gen = "128", threads = "0";
    int reps = 5, bw_mib = 1024;
    bool json = false, deterministic = false;
    MemBudgetArgs budget;
    ExpertParallelArgs ep;
};

// Each item in [0, max]: -p 100000 would otherwise size a context of that many tokens.
Result<std::vector<int>> int_list(const std::string& opt, const std::string& s, int max) {
    std::vector<int> v;
    size_t i = 0;
    while (i <= s.size()) {
        const size_t j = std::min(s.find(',', i), s.size());
        const std::string item = s.substr(i, j - i);
        int x = 0;
        size_t used = 0;
        try {
            x = std::stoi(item, &used);
        } catch (...) {
            used = 0;
        }
        if (item.empty() || used != item.size() || x < 0)
            return make_error("{} '{}': expected a comma list of non-negative integers", opt, s);
        if (x > max) return make_error("{} {} is over the limit of {}", opt, x, max);
        v.push_back(x);
        i = j + 1;
    }
    return v;
}

int run_bench_cmd(const BenchArgs& a) {
    if (auto j = join_expert_parallel(a.ep); !j) return report(j.message());
    BenchParams p;
    p.deterministic = a.deterministic;
    p.kv_types = a.kv;
    auto pp = int_list("-p", a.prompt, kMaxBenchTokens);
    if (!pp) return report(pp.message());
    auto tg = int_list("-n", a.gen, kMaxBenchTokens);
    if (!tg) return report(tg.message());
    auto th = int_list("-t", a.threads, 4096);
    if (!th) return report(th.message());
    if (a.reps < 1 || a.reps > 1000)
        return report(fmt::format("-r {} must be in [1, 1000]", a.reps));
    if (a.bw_mib < 1 || a.bw_mib > 65536)
        return report(fmt::format("--bw-mib {} must be in [1, 65536]", a.bw_mib));
    p.n_prompt = *pp, p.n_gen = *tg, p.threads = *th, p.reps = a.reps;
    p.bandwidth_bytes = uint64_t(a.bw_mib) << 20;
    auto model = load_model(a.model);
    if (!model) return report(model.message());
    int max_p = 1, max_g = 0;
    for (int x : p.n_prompt) max_p = std::max(max_p, x);
    for (int x : p.n_gen) max_g = std::max(max_g, x);
    auto plan =
        apply_mem_budget(**model, a.budget, std::max(max_p, p.tg_prompt + max_g) + 8, 1, a.kv);
    if (!plan) return report(plan.message());
    auto ep = apply_expert_parallel(**model, a.ep);
    if (!ep) return report(ep.message());
    const ModelFootprint fp = model_footprint(**model);
    const double t0 = now_seconds();
    // The disk side of the prediction, measured before the runs (they read the file too).
    double disk_bw = 0;
    if (plan->slots > 0) {
        auto d = measure_disk_read_bandwidth((*model)->source->path(), uint64_t(256) << 20,
                                             a.budget.io_threads);
        if (!d) return report(d.message());
        disk_bw = *d;
    }
    auto r = run_bench(**model, p, [&](const BenchResult& res) {
        if (!a.json)
            std::fprintf(stderr, "%s t=%d: %.2f ± %.2f t/s\n", res.test.c_str(), res.threads,
                         res.mean_ts, res.sd_ts);
    });
    if (!r) return report(r.message());
    if (plan->slots > 0) {
        const ModelConfig& c = (*model)->config;
        DecodeBytes db = expert_decode_bytes(c, routed_expert_bytes(**model));
        db.non_expert_per_token = std::max(0.0, fp.active_bytes_per_token - db.experts_per_token);
        const double share = std::min(1.0, double(plan->slots) / double(db.n_experts));
        for (BenchResult& res : *r)
            if (res.n_gen > 0) {
                res.predicted_share = share, res.disk_bandwidth = disk_bw;
                res.predicted_ts =
                    predict_decode(db, share, res.read_bandwidth, disk_bw).tokens_per_second;
            }
    }
    if (*ep) {  // the per-rank table (gathered on rank 0), before the results
        auto table = expert_parallel_table(**ep, now_seconds() - t0);
        if (!table) return report(table.message());
        std::fwrite(table->data(), 1, table->size(), stderr);
    }
    const std::string out = a.json ? bench_json(fp, *r) : bench_markdown(fp, *r);
    std::fwrite(out.data(), 1, out.size(), stdout);
    if (const auto pm = read_process_memory(); pm && a.budget.gib > 0)
        std::fprintf(stderr, "peak memory (VmHWM): %.1f MiB of a %.1f MiB budget\n",
                     double(pm->peak_rss) / (1 << 20), a.budget.gib * 1024);
    return 0;
}

}  // namespace

void register_bench_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<BenchArgs>();
    auto* cmd =
        app.add_subcommand("bench", "measure prompt and generation throughput (llama-bench style)");
    cmd->add_option("-m,--model", a->model, "GGUF file or Hugging Face folder")->required();
    add_weight_memory_options(cmd);
    add_mem_budget_options(cmd, a->budget);
    add_kv_cache_options(cmd, a->kv);
    add_expert_parallel_options(cmd, a->ep);
    cmd->add_option("-p,--n-prompt", a->prompt, "prompt lengths, comma list (default 512)");
    cmd->add_option("-n,--n-gen", a->gen, "generation lengths, comma list (default 128)");
    cmd->add_option("-t,--threads", a->threads, "thread counts, comma list (default: all cores)");
    cmd->add_option("-r,--repetitions", a->reps, "repetitions per test (default 5)");
    cmd->add_option("--bw-mib", a->bw_mib,
                    "buffer for the bandwidth measurement, MiB (default 1024)");
    cmd->add_flag("--json", a->json, "print a JSON array instead of the Markdown table");
    cmd->add_flag("--deterministic", a->deterministic,
                  "batch-invariant kernels (one path per weight type whatever the batch)");
    cmd->callback([a, &exit_code] { exit_code = run_bench_cmd(*a); });
}

}  // namespace moe::cli
