// `moeinfer serve [-m MODEL]... [--host H] [--port P] [-np SLOTS] [-c CTX] [--api-key KEY]`: the
// OpenAI-compatible HTTP server (src/server). It listens first and loads the models in the
// background (/health answers 503 until they are ready); each model gets its own scheduler.
// Without -m it serves the bundled demo MoE. SIGINT/SIGTERM stop it cleanly.
// `mpirun -np N moeinfer serve -m MODEL --expert-parallel`: rank 0 serves HTTP and runs the
// scheduler, whose session sends each step to ranks 1..N-1 (runtime/step_mirror.h); they load
// the same model and replay the steps until rank 0 stops (a signal to rank 0 or to mpirun).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <thread>

#include "analysis/params.h"
#include "analysis/routing_stats.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/expert_parallel_options.h"
#include "core/mapped_file.h"
#include "core/progress_bar.h"
#include "formats/model_source.h"
#include "models/model.h"
#include "server/server.h"

namespace moe::cli {
namespace {

struct ServeArgs {
    KvTypes kv;
    std::vector<std::string> models;
    server::ServerOptions server;
    std::string reasoning_format = "deepseek";
    int n_slots = 4, ctx = 0, step_tokens = kDefaultStepTokens, max_queue = 64, threads = 0;
    int prefill_step_tokens = kDefaultPrefillStepTokens;
    int64_t kv_tokens = 0;
    bool deterministic = false;
    MemBudgetArgs budget;  // applied to each model on its own
    ExpertParallelArgs ep;
};

// "-m [NAME=]PATH[,mmap|,no-mmap][,isa=scalar|avx2|avx512]": the options that are per model.
struct ModelSpec {
    std::string name, path;
    WeightMemory memory = WeightMemory::Auto;
    bool memory_given = false;
    int isa = -1;  // kern::Isa value; -1: the process default (MOE_ISA or the best supported)
};

// Takes one trailing ",option" off `rest` if it is a per-model option. Returns false when the
// tail is not one (it is then part of the path).
Result<bool> take_model_option(std::string& rest, ModelSpec& m) {
    const size_t comma = rest.rfind(',');
    if (comma == std::string::npos || comma == 0) return false;
    const std::string opt = rest.substr(comma + 1);
    if (opt == "mmap" || opt == "no-mmap") {
        if (m.memory_given) return make_error("-m: ,mmap / ,no-mmap given twice");
        m.memory = opt == "mmap" ? WeightMemory::Map : WeightMemory::Load;
        m.memory_given = true;
    } else if (opt.rfind("isa=", 0) == 0) {
        const std::string v = opt.substr(4);
        if (m.isa >= 0) return make_error("-m: ,isa= given twice");
        if (v == "scalar")
            m.isa = 0;
        else if (v == "avx2")
            m.isa = 1;
        else if (v == "avx512")
            m.isa = 2;
        else
            return make_error("-m: isa '{}' is not one of scalar, avx2, avx512", v);
    } else {
        return false;
    }
    rest.resize(comma);
    return true;
}

Result<ModelSpec> parse_model_spec(const std::string& s) {
    ModelSpec m;
    std::string rest = s;
    for (;;) {
        auto took = take_model_option(rest, m);
        if (!took) return make_error("{} (in -m '{}')", took.message(), s);
        if (!*took) break;
    }
    const size_t eq = rest.find('=');
    if (eq != std::string::npos && rest.find('/') > eq) {
        m.name = rest.substr(0, eq);
        rest = rest.substr(eq + 1);
        if (m.name.empty()) return make_error("-m '{}': empty model name before '='", s);
    }
    if (rest.empty()) return make_error("-m '{}': no model path", s);
    m.path = rest;
    if (m.name.empty()) {
        std::filesystem::path p(rest);
        m.name = (p.has_filename() ? p : p.parent_path()).stem().string();
    }
    return m;
}

// Sizes and routing shape for /v1/models and the web page (parameter counts as `inspect`).
server::ModelShape model_shape(const Model& m) {
    const ModelConfig& c = m.config;
    server::ModelShape s;
    s.n_layer = c.n_layer;
    for (int l = 0; l < c.n_layer; ++l)
        if (c.is_moe[size_t(l)]) s.moe_layers.push_back(l);
    if (!s.moe_layers.empty()) {
        s.n_expert = c.moe.n_expert;
        s.n_expert_used = c.moe.n_expert_used;
    }
    const ParamReport p = count_source_params(*m.source, c);
    s.params_total = p.total;
    s.params_active = p.active();
    const WeightTable w = weight_table(m);
    s.weight_bytes_per_token = w.pass_bytes + w.embd_row_bytes;
    for (int64_t b : w.expert_bytes) s.weight_bytes_per_token += b * w.n_expert_used;
    return s;
}

// Everything one served model owns.
struct LoadedModel {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tok;
    std::unique_ptr<Scheduler> scheduler;
};

// The model with its --mem-budget store and, with --expert-parallel, this rank's experts (every
// rank of the job calls this in the same order: it has collective steps).
Result<std::unique_ptr<Model>> load_for_serving(const ModelSpec& spec, const ServeArgs& a) {
    // Per model: -m PATH,mmap / ,no-mmap, else the command line's --mmap / --no-mmap.
    MOE_TRY(auto src,
            open_model_source(spec.path, spec.memory_given ? spec.memory : weight_memory()));
    auto model = load_model(std::move(src));
    if (!model) return model.error();
    // The KV estimate of the budget: every slot at the context (0: the budget's default).
    if (auto b = apply_mem_budget(**model, a.budget, a.ctx, a.n_slots, a.kv); !b)
        return make_error("{}: {}", spec.path, b.message());
    if (auto ep = apply_expert_parallel(**model, a.ep); !ep)
        return make_error("{}: {}", spec.path, ep.message());
    return std::move(*model);
}

SchedulerOptions scheduler_options(const ModelSpec& spec, const ServeArgs& a) {
    SchedulerOptions so;
    so.n_slots = a.n_slots;
    so.step_tokens = a.step_tokens;
    so.prefill_step_tokens = a.prefill_step_tokens;
    so.max_queue = a.max_queue;
    so.session.n_ctx = a.ctx;
    so.session.n_threads = a.threads;
    so.session.kv_types = a.kv;
    so.session.kv_tokens = a.kv_tokens;
    so.session.deterministic = a.deterministic;
    so.session.isa = spec.isa;
    return so;
}

Result<std::shared_ptr<server::ServedModel>> load_served(const ModelSpec& spec, const ServeArgs& a,
                                                         std::shared_ptr<LoadedModel>& loaded,
                                                         StepChannel* mirror) {
    MOE_TRY(auto model, load_for_serving(spec, a));
    auto owner = std::make_shared<LoadedModel>();
    owner->model = std::move(model);
    auto tok = Tokenizer::from_source(*owner->model->source);
    if (!tok) return make_error("{}: {}", spec.path, tok.message());
    owner->tok = std::move(*tok);
    SchedulerOptions so = scheduler_options(spec, a);
    so.session.mirror = mirror;
    auto sched = Scheduler::create(*owner->model, *owner->tok, so);
    if (!sched) return make_error("{}: {}", spec.path, sched.message());
    owner->scheduler = std::move(*sched);

    auto m = std::make_shared<server::ServedModel>();
    m->name = spec.name;
    m->tok = owner->tok.get();
    m->scheduler = owner->scheduler.get();
    m->renderer = ChatRenderer::from_source(*owner->model->source);
    const int train = owner->model->config.n_ctx_train;
    m->n_ctx = a.ctx > 0 ? a.ctx : std::min(train > 0 ? train : 4096, 4096);
    m->created = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    m->shape = model_shape(*owner->model);
    m->owner = owner;
    loaded = owner;
    return m;
}

// Ranks 1..N-1 of `serve --expert-parallel`: the same model and session as rank 0's scheduler,
// replaying its steps. A signal (mpirun forwards SIGINT/SIGTERM to every rank) leaves rank 0 to
// send the shutdown; if none comes within 10 s, this rank ends the job.
int run_follower(const ServeArgs& a, const ModelSpec& spec, sigset_t sigs) {
    std::atomic<bool> done{false};
    std::thread([sigs, &done]() mutable {
        int sig = 0;
        sigwait(&sigs, &sig);
        for (int i = 0; i < 1000 && !done.load(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (!done.load()) {
            report(fmt::format("signal {}: no shutdown from rank 0 within 10 s", sig));
            std::_Exit(1);
        }
    }).detach();
    auto model = load_for_serving(spec, a);
    if (!model) return report(model.message());
    auto session = Session::create(**model, scheduler_session_options(scheduler_options(spec, a)));
    if (!session) return report(fmt::format("{}: {}", spec.path, session.message()));
    auto channel = make_step_channel();
    if (auto r = follow_steps(*channel, **session); !r) return report(r.message());
    done.store(true);
    return 0;
}

int run_serve(ServeArgs a) {
    set_progress_enabled(false);  // stderr carries the server's log lines
    if (a.step_tokens < a.n_slots)
        return report(fmt::format(
            "--step-tokens {} is below --parallel {}: every decoding sequence takes one token of "
            "each step",
            a.step_tokens, a.n_slots));
    if (a.models.empty()) a.models.push_back(default_model_path());
    std::vector<ModelSpec> specs;
    for (const auto& s : a.models) {
        auto spec = parse_model_spec(s);
        if (!spec) return report(spec.message());
        for (const auto& o : specs)
            if (o.name == spec->name)
                return report(fmt::format("two models are named '{}' (use -m NAME=PATH)", o.name));
        specs.push_back(*spec);
    }
    if (a.reasoning_format == "none") a.server.reasoning = server::ReasoningFormat::None;
    a.server.http_threads = std::max(a.server.http_threads, 4 * a.n_slots + 8);
    if (a.ep.on && specs.size() > 1)
        return report(fmt::format("serve --expert-parallel serves one model ({} given with -m)",
                                  specs.size()));

    // SIGINT/SIGTERM are taken by one thread (sigwait), so no handler runs on a worker (nor on
    // MPI's threads, started after this).
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    // The loader thread and then the scheduler thread make the MPI calls, never two at once.
    if (auto j = join_expert_parallel(a.ep, /*several_threads=*/true); !j)
        return report(j.message());
    if (!is_output_rank()) return run_follower(a, specs[0], sigs);
    const std::unique_ptr<StepChannel> mirror = make_step_channel();

    server::Server srv(a.server);
    auto port = srv.bind();
    if (!port) return report(port.message());
    std::thread http([&] { srv.run(); });
    fmt::print(stderr, "moeinfer serve: listening on http://{}:{}{}\n", a.server.host, *port,
               mirror ? fmt::format(" (expert parallel: rank 0 of {}; ranks 1..{} follow its "
                                    "steps)",
                                    mirror->processes(), mirror->processes() - 1)
                      : std::string());

    std::atomic<bool> load_failed{false};
    std::string load_error;
    std::vector<std::shared_ptr<LoadedModel>> loaded;
    std::thread loader([&] {
        for (const auto& spec : specs) {
            std::shared_ptr<LoadedModel> l;
            auto m = load_served(spec, a, l, mirror.get());
            if (!m) {
                load_error = m.message();
                load_failed.store(true);
                kill(getpid(), SIGTERM);  // wakes the signal thread
                return;
            }
            fmt::print(stderr, "moeinfer serve: model '{}' ready ({}, context {} tokens{})\n",
                       spec.name, spec.path, (*m)->n_ctx,
                       mirror ? fmt::format(", experts split over {} ranks", mirror->processes())
                              : std::string());
            loaded.push_back(std::move(l));
            srv.add_model(std::move(*m));
        }
        srv.set_ready();
        fmt::print(stderr, "moeinfer serve: ready\n");
    });

    int sig = 0;
    sigwait(&sigs, &sig);
    srv.stop();
    loader.join();
    http.join();
    if (load_failed.load()) return report(load_error);
    if (mirror) {
        // The scheduler thread ends (and with it the session's steps) before the followers are
        // told to stop from this thread: one MPI call at a time.
        for (auto& l : loaded) l->scheduler.reset();
        if (auto r = send_shutdown(*mirror); !r) return report(r.message());
    }
    fmt::print(stderr, "moeinfer serve: stopped\n");
    return 0;
}

}  // namespace

void register_serve_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<ServeArgs>();
    auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server");
    cmd->add_option("-m,--model", a->models,
                    "[NAME=]PATH[,mmap|,no-mmap][,isa=scalar|avx2|avx512]; repeatable "
                    "(default: bundled demo MoE)");
    cmd->add_flag("--deterministic", a->deterministic,
                  "batch invariance: a request's output does not depend on the other requests "
                  "of a step (greedy output equals a single-request run; prompts are slower)");
    add_weight_memory_options(cmd);
    add_mem_budget_options(cmd, a->budget);
    add_kv_cache_options(cmd, a->kv);
    cmd->add_option("--host", a->server.host, "address to listen on")->capture_default_str();
    cmd->add_option("--port", a->server.port, "port (0: any free port)")
        ->check(CLI::Range(0, 65535))
        ->capture_default_str();
    cmd->add_option("--parallel", a->n_slots, "sequences decoded at once per model (also -np)")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    cmd->add_option("-c,--ctx-size", a->ctx, "context per sequence (default: model's, max 4096)")
        ->check(kContextRange);
    cmd->add_option("--step-tokens,--batch-size", a->step_tokens,
                    "tokens per scheduler step (>= --parallel): every decoding sequence's next "
                    "token, then prompt chunks oldest first")
        ->check(CLI::Range(1, 1 << 16))
        ->capture_default_str();
    cmd->add_option("--prefill-step-tokens", a->prefill_step_tokens,
                    "tokens of a step in which no sequence is decoding (prompt chunks only; "
                    "at least --step-tokens)")
        ->check(CLI::Range(0, 1 << 16))
        ->capture_default_str();
    cmd->add_option("--kv-tokens", a->kv_tokens, "KV pool size in tokens (default: ctx x slots)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--max-queue", a->max_queue, "waiting requests beyond which 503 is returned")
        ->check(CLI::Range(0, 1 << 20))
        ->capture_default_str();
    cmd->add_option("--api-key", a->server.api_key,
                    "require 'Authorization: Bearer KEY' (or set MOEINFER_API_KEY)")
        ->envname("MOEINFER_API_KEY");
    cmd->add_option("--max-body", a->server.max_body, "largest request body in bytes (else 413)")
        ->check(CLI::Range(size_t(1), size_t(1) << 34))
        ->capture_default_str();
    cmd->add_option("--timeout", a->server.timeout_s, "socket read/write timeout in seconds")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    cmd->add_option("--http-threads", a->server.http_threads,
                    "connections served at once (at least 4 x -np + 8)")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    cmd->add_option("--reasoning-format", a->reasoning_format,
                    "deepseek: <think> text as reasoning_content; none: keep it inline")
        ->check(CLI::IsMember({"deepseek", "none"}))
        ->capture_default_str();
    cmd->add_option("-t,--threads", a->threads, "compute threads (default: all cores)");
    add_expert_parallel_options(cmd, a->ep);
    cmd->callback([a, &exit_code] { exit_code = run_serve(*a); });
}

}  // namespace moe::cli
