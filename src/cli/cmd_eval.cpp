// `moeinfer eval -m MODEL -f TEXT [-c 512] [--stride S] [--ref MODEL2] [-t N] [--json]`:
// perplexity with the upstream tool's method (windows of -c tokens, second half scored), and
// with --ref the KL divergence and top-1 agreement against a model of the same vocabulary, plus
// routing variance (expert sets that differ vs --ref, and batch 1 vs one batch).
// `--top-k 1,2,4,all` runs the top-k sweep instead (analysis/topk_sweep.h): one row per k,
// `--html FILE` also writes its report with plots.
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "analysis/perplexity.h"
#include "analysis/routing_report.h"
#include "analysis/sweep_report.h"
#include "analysis/topk_sweep.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/expert_parallel_options.h"
#include "core/input_file.h"
#include "models/model.h"
#include "models/top_k.h"
#include "tokenizer/tokenizer.h"

namespace moe::cli {
namespace {

struct EvalArgs {
    KvTypes kv;
    std::string model, file, ref, top_k, html;
    int decode_tokens = 64;
    int n_ctx = 512, stride = 0, threads = 0, chunks = 0, b1_chunks = 1;
    bool json = false;
    bool bos_chunks = false;
    MemBudgetArgs budget;
    ExpertParallelArgs ep;
};

Result<std::string> read_text(const std::string& path) {
    return read_input_file(path);  // a regular file, capped: -f /dev/zero must not run forever
}

// The two models must share a vocabulary: same size and, where both list them, same tokens.
Result<void> check_same_vocab(const Model& a, const Model& b) {
    if (a.config.n_vocab != b.config.n_vocab)
        return make_error("--ref has a vocabulary of {} tokens, the model {}: they must match",
                          b.config.n_vocab, a.config.n_vocab);
    const gguf::Array* ta = a.source ? a.source->get_array("tokenizer.ggml.tokens") : nullptr;
    const gguf::Array* tb = b.source ? b.source->get_array("tokenizer.ggml.tokens") : nullptr;
    if (ta && tb) {
        if (ta->items.size() != tb->items.size())
            return make_error("--ref's tokenizer has {} tokens, the model's {}", tb->items.size(),
                              ta->items.size());
        for (size_t i = 0; i < ta->items.size(); ++i) {
            const std::string* x = ta->items[i].as_string();
            const std::string* y = tb->items[i].as_string();
            if (x && y && *x != *y)
                return make_error("--ref's vocabulary differs from the model's at token {}", i);
        }
    }
    return {};
}

class ProgressBar {
  public:
    explicit ProgressBar(bool enabled)
        : on_(enabled), tty_(isatty(fileno(stderr))), t0_(now_seconds()) {}
    void update(const PerplexityProgress& p) {
        if (!on_) return;
        const int width = 30;
        const int filled = p.n_windows ? width * p.window / p.n_windows : width;
        const double el = now_seconds() - t0_;
        const double eta = p.window ? el / p.window * (p.n_windows - p.window) : 0;
        std::string bar(size_t(filled), '#');
        bar.resize(size_t(width), '.');
        fmt::print(stderr,
                   "{}[{}] window {}/{}  PPL {:.4f}  ({} tokens scored, {:.1f}s, ETA {:.0f}s){}",
                   tty_ ? "\r" : "", bar, p.window, p.n_windows, p.ppl, p.n_scored, el, eta,
                   tty_ ? "" : "\n");
        if (tty_ && p.window == p.n_windows) fmt::print(stderr, "\n");
        std::fflush(stderr);
    }

  private:
    bool on_, tty_;
    double t0_;
};

std::string share(const RoutingDiff& d) {
    if (!d.available) return "n/a (" + d.why_not + ")";
    return fmt::format("{:.3f}% ({} of {} (MoE layer, token))", d.share() * 100.0, d.differing,
                       d.compared);
}

nlohmann::json routing_json(const RoutingDiff& d) {
    nlohmann::json j = {{"available", d.available}};
    if (!d.available) {
        j["reason"] = d.why_not;
        return j;
    }
    j["compared"] = d.compared;
    j["differing"] = d.differing;
    j["share"] = d.share();
    return j;
}

int run_sweep(const EvalArgs& a, const Model& m, const std::vector<int>& ks,
              const std::vector<int32_t>& ids, const PerplexityOptions& opt) {
    SweepOptions so;
    so.ppl = opt;
    so.decode_tokens = a.decode_tokens;
    fmt::print(stderr, "top-k sweep: k = {} (native {})\n", fmt::join(ks, ", "),
               native_top_k(m.config.moe));
    const bool tty = isatty(fileno(stderr));
    auto res = run_top_k_sweep(m, ids, ks, so, [tty](int w, int n) {
        if (tty) fmt::print(stderr, "\rwindow {}/{}{}", w, n, w == n ? "\n" : "");
    });
    if (!res) return report(res.message());
    nlohmann::json j = sweep_json(*res);
    j["model"] = a.model;
    j["file"] = a.file;
    if (!a.html.empty() && is_output_rank()) {
        const std::string title = fmt::format("Top-k sweep: {} on {}", a.model, a.file);
        if (auto w = write_text_file(a.html, sweep_report_html(j, title)); !w)
            return report(w.message());
        fmt::print(stderr, "wrote {}\n", a.html);
    }
    if (a.json) {
        fmt::print("{}\n", j.dump(2));
        return 0;
    }
    fmt::print("{}\n{}", sweep_table(j), j.value("summary", std::string()));
    return 0;
}

int run_eval(const EvalArgs& a) {
    if (auto j = join_expert_parallel(a.ep); !j) return report(j.message());
    if (!a.top_k.empty() && !a.ref.empty())
        return report(
            "--top-k and --ref cannot be combined (the sweep compares with the native k)");
    if (!a.html.empty() && a.top_k.empty()) return report("--html needs --top-k");
    auto text = read_text(a.file);
    if (!text) return report(text.message());
    if (text->empty()) return report(fmt::format("'{}' is empty: nothing to evaluate", a.file));
    if (a.n_ctx < 4) return report(fmt::format("context -c {} is too small (at least 4)", a.n_ctx));
    if (a.stride < 0 || a.stride >= a.n_ctx)
        return report(fmt::format("--stride {} must be in [1, {}]", a.stride, a.n_ctx - 1));
    auto model = load_model(a.model);
    if (!model) return report(model.message());
    if (auto b = apply_mem_budget(**model, a.budget, a.n_ctx + 1, 1, a.kv); !b)
        return report(b.message());
    auto ep = apply_expert_parallel(**model, a.ep);
    if (!ep) return report(ep.message());
    const Model& m = **model;
    std::vector<int> ks;
    if (!a.top_k.empty()) {
        auto parsed = parse_top_k_list(a.top_k, m.config);
        if (!parsed) return report(parsed.message());
        ks = std::move(*parsed);
    }
    auto tok = Tokenizer::from_source(*m.source);
    if (!tok) return report(fmt::format("{}: {}", a.model, tok.message()));
    std::unique_ptr<Model> ref;
    if (!a.ref.empty()) {
        auto r = load_model(a.ref);
        if (!r) return report(r.message());
        ref = std::move(*r);
        if (auto v = check_same_vocab(m, *ref); !v) return report(v.message());
    }

    std::vector<int32_t> ids = (*tok)->encode(*text, /*add_bos=*/!a.bos_chunks, false);
    PerplexityOptions opt;
    opt.n_ctx = a.n_ctx;
    opt.stride = a.stride;
    opt.bos = (*tok)->add_bos() ? (*tok)->bos() : -1;
    if (a.bos_chunks) {
        // Chunks of n_ctx tokens, each evaluated as [BOS] + chunk[:-1] with every chunk token
        // scored: windows of n_ctx + 1 tokens [BOS, chunk...] scored from position 0.
        if ((*tok)->bos() < 0) return report("--bos-chunks: the vocabulary has no BOS token");
        if (a.stride) return report("--bos-chunks and --stride cannot be combined");
        std::vector<int32_t> stream;
        for (size_t i = 0; i + size_t(a.n_ctx) <= ids.size(); i += size_t(a.n_ctx)) {
            stream.push_back((*tok)->bos());
            stream.insert(stream.end(), ids.begin() + long(i), ids.begin() + long(i) + a.n_ctx);
        }
        ids = std::move(stream);
        opt.n_ctx = a.n_ctx + 1;
        opt.score_from = 0;
        opt.bos = (*tok)->bos();
    }
    opt.max_windows = a.chunks;
    opt.batch1_windows = a.b1_chunks;
    opt.n_threads = a.threads;
    opt.kv_types = a.kv;
    auto plan = plan_windows(int64_t(ids.size()), opt);
    if (!plan) return report(fmt::format("{}: {}", a.file, plan.message()));
    if (!ks.empty()) return run_sweep(a, m, ks, ids, opt);
    fmt::print(stderr, "{}: {} tokens, {} windows of {}{}, {} predictions scored\n", a.file,
               ids.size(), plan->n_windows, a.n_ctx,
               a.stride ? fmt::format(" every {}", a.stride) : std::string(), plan->n_scored);

    ProgressBar bar(true);
    const double t0 = now_seconds();
    auto res = evaluate_perplexity(m, ref.get(), ids, opt,
                                   [&bar](const PerplexityProgress& p) { bar.update(p); });
    if (!res) return report(res.message());
    const PerplexityResult& r = *res;
    const double secs = now_seconds() - t0;
    if (*ep) {  // the per-rank table (gathered on rank 0), as bench prints it
        auto table = expert_parallel_table(**ep, secs);
        if (!table) return report(table.message());
        std::fwrite(table->data(), 1, table->size(), stderr);
    }

    if (a.json) {
        nlohmann::json j;
        j["model"] = a.model;
        j["file"] = a.file;
        j["n_ctx"] = a.n_ctx;
        j["stride"] = a.stride;
        j["n_tokens"] = r.n_tokens;
        j["n_windows"] = r.n_windows;
        add_ppl_json(j, r);
        j["window_ppl"] = r.window_ppl;
        j["seconds"] = secs;
        if (r.has_ref) {
            j["ref"] = a.ref;
            j["ref_ppl"] = r.ref_ppl;
            j["ref_ppl_stderr"] = r.ref_ppl_stderr;
            j["kl_mean"] = r.kl_mean;
            j["kl_stderr"] = r.kl_stderr;
            j["kl_p99"] = r.kl_p99;
            j["kl_max"] = r.kl_max;
            j["top1_agreement"] = r.top1_agreement;
            j["routing_vs_ref"] = routing_json(r.routing_vs_ref);
        }
        nlohmann::json b1 = routing_json(r.routing_batch1);
        b1["windows"] = r.batch1_windows;
        if (r.batch1_windows > 0) {
            b1["max_abs_logit_diff"] = r.batch1_max_abs_logit_diff;
            b1["top1_agreement"] = r.batch1_top1_agreement;
        }
        j["routing_batch1_vs_batch"] = b1;
        fmt::print("{}\n", j.dump(2));
        return 0;
    }

    fmt::print("PPL = {:.4f} +/- {:.5f}  ({} predictions in {} windows of {}, {:.1f}s)\n", r.ppl,
               r.ppl_stderr, r.n_scored, r.n_windows, a.n_ctx, secs);
    if (r.has_ref) {
        fmt::print("reference PPL = {:.4f} +/- {:.5f}  ({})\n", r.ref_ppl, r.ref_ppl_stderr, a.ref);
        fmt::print(
            "KL divergence (ref || model): mean {:.6f} +/- {:.6f}, 99th percentile {:.6f}, "
            "max {:.6f}\n",
            r.kl_mean, r.kl_stderr, r.kl_p99, r.kl_max);
        fmt::print("top-1 agreement with ref: {:.3f}%\n", r.top1_agreement * 100.0);
        fmt::print("routing differs from ref: {}\n", share(r.routing_vs_ref));
    }
    if (r.batch1_windows > 0) {
        fmt::print("routing, batch 1 vs one batch ({} window{}): {}\n", r.batch1_windows,
                   r.batch1_windows == 1 ? "" : "s", share(r.routing_batch1));
        fmt::print("logits, batch 1 vs one batch: max |diff| {:.3g}, top-1 agreement {:.3f}%\n",
                   r.batch1_max_abs_logit_diff, r.batch1_top1_agreement * 100.0);
    }
    return 0;
}

}  // namespace

void register_eval_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<EvalArgs>();
    auto* cmd = app.add_subcommand("eval", "perplexity of a text; KL and routing vs a reference");
    cmd->add_option("-m,--model", a->model, "GGUF file or Hugging Face folder")->required();
    add_weight_memory_options(cmd);
    add_mem_budget_options(cmd, a->budget);
    add_kv_cache_options(cmd, a->kv);
    add_expert_parallel_options(cmd, a->ep);
    cmd->add_option("-f,--file", a->file, "text file (read as raw bytes)")->required();
    cmd->add_option("-c,--ctx", a->n_ctx, "window length in tokens (default 512)")
        ->check(kContextRange);
    cmd->add_option("--stride", a->stride,
                    "overlapping windows every S tokens, scoring each window's last S");
    cmd->add_option("--ref", a->ref, "reference model with the same vocabulary (e.g. the f16)");
    cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
    cmd->add_option("--chunks", a->chunks, "evaluate at most this many windows (default all)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--b1-chunks", a->b1_chunks,
                    "windows also evaluated token by token for routing variance (default 1, "
                    "-1 all, 0 none)");
    cmd->add_flag("--json", a->json, "print one JSON object");
    cmd->add_option("--top-k", a->top_k,
                    "top-k sweep: routed experts per token to try, e.g. 1,2,4,8,all (the native "
                    "k is always added)");
    cmd->add_option("--decode-tokens", a->decode_tokens,
                    "--top-k: tokens decoded one by one per k for decode tok/s (default 64)")
        ->check(CLI::Range(0, 4096));
    cmd->add_option("--html", a->html, "--top-k: also write the sweep report (HTML) here");
    cmd->add_flag("--bos-chunks", a->bos_chunks,
                  "score every token of consecutive -c token chunks, each run as [BOS] + chunk "
                  "(the protocol of models/README.md)");
    cmd->callback([a, &exit_code] { exit_code = run_eval(*a); });
}

}  // namespace moe::cli
