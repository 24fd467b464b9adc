// `moeinfer logits -m MODEL --tokens 1,2,3 -o OUT.f32 [--router-out R.f32]`: evaluates the tokens
// in one pass and writes float32 little-endian logits [n_tokens, n_vocab] (external checks rely on
// this exact contract); router logits before top-k go to [n_moe_layers, n_tokens, n_expert].
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/expert_parallel_options.h"
#include "core/atomic_file.h"
#include "formats/override_source.h"
#include "models/model.h"
#include "runtime/session.h"

namespace moe::cli {
namespace {

struct LogitsArgs {
    KvTypes kv;
    std::string model, tokens, out, router_out;
    std::vector<std::string> overrides;
    int threads = 0;
    MemBudgetArgs budget;
    ExpertParallelArgs ep;
};

Result<void> write_f32(const std::string& path, const std::vector<float>& v) {
    return write_file_atomic(
        path, std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

int run_logits(const LogitsArgs& a) {
    if (auto j = join_expert_parallel(a.ep); !j) return report(j.message());
    auto toks = parse_token_list(a.tokens);
    if (!toks) return report(toks.message());
    auto src = open_model_source(a.model, a.overrides);
    if (!src) return report(src.message());
    auto model = load_model(*src);
    if (!model) return report(model.message());
    if (auto b = apply_mem_budget(
            **model, a.budget,
            std::max<int>(int(toks->size()), std::min((*model)->config.n_ctx_train, 4096)), 1,
            a.kv);
        !b)
        return report(b.message());
    if (auto ep = apply_expert_parallel(**model, a.ep); !ep) return report(ep.message());
    const Model& m = **model;
    SessionOptions so;
    so.n_threads = a.threads;
    so.kv_types = a.kv;
    so.n_ctx = std::max<int>(int(toks->size()), std::min(m.config.n_ctx_train, 4096));
    so.n_batch = int(toks->size());
    auto session = Session::create(m, so);
    if (!session) return report(session.message());
    Session& s = **session;
    RouterTrace trace;
    const bool want_router = !a.router_out.empty();
    auto logits = s.eval_tokens(*toks, /*all_logits=*/true, 0, want_router ? &trace : nullptr);
    if (!logits) return report(logits.message());
    if (!is_output_rank()) return 0;  // every rank computed the same logits; rank 0 writes them
    if (auto r = write_f32(a.out, *logits); !r) return report(r.message());
    if (want_router) {
        if (m.config.n_moe_layers() == 0)
            return report("--router-out: the model has no MoE layers");
        if (auto r = write_f32(a.router_out, trace.logits); !r) return report(r.message());
    }
    return 0;
}

}  // namespace

void register_logits_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<LogitsArgs>();
    auto* cmd = app.add_subcommand("logits", "evaluate token ids in one pass and write all logits");
    cmd->add_option("-m,--model", a->model, "GGUF file or Hugging Face folder")->required();
    add_weight_memory_options(cmd);
    add_mem_budget_options(cmd, a->budget);
    add_kv_cache_options(cmd, a->kv);
    add_expert_parallel_options(cmd, a->ep);
    cmd->add_option("--tokens", a->tokens, "comma-separated token ids")->required();
    cmd->add_option("-o,--output", a->out, "output file: float32 [n_tokens, n_vocab]")->required();
    cmd->add_option("--router-out", a->router_out,
                    "write router logits float32 [n_moe_layers, n_tokens, n_expert]");
    cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
    cmd->add_option("--override-kv", a->overrides,
                    "override metadata: KEY=TYPE:VALUE (int|float|bool|str)");
    cmd->callback([a, &exit_code] { exit_code = run_logits(*a); });
}

}  // namespace moe::cli
