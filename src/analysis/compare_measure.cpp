#include "analysis/compare_measure.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include "analysis/compare_failures.h"
#include "analysis/params.h"
#include "analysis/perplexity.h"
#include "analysis/routing_stats.h"
#include "analysis/topk_sweep.h"
#include "core/bundled_file.h"
#include "core/input_file.h"
#include "core/sysinfo.h"
#include "core/thread_pool.h"
#include "core/utf8.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace moe {

SamplerParams compare_sampler_params() {
    SamplerParams sp;
    sp.temp = 0;
    return sp;
}

Result<void> check_compare_options(const CompareOptions& o) {
    if (o.n_threads < 0 || o.n_threads > ThreadPool::max_threads())  // ThreadPool's message
        return ThreadPool::create(o.n_threads).error();
    return compare_sampler_params().validate();
}

namespace {

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Architecture, parameter counts, disk size and weight bytes read per generated token.
void describe_model(const Model& m, ModelMeasures& r) {
    const ModelConfig& c = m.config;
    r.family = c.family;
    r.name = c.name;
    r.arch = c.arch;
    r.n_vocab = c.n_vocab;
    r.n_moe_layers = c.n_moe_layers();
    r.n_expert = r.n_moe_layers ? c.moe.n_expert : 0;
    r.n_expert_used = r.n_moe_layers ? c.moe.n_expert_used : 0;
    r.disk_bytes = m.source->file_bytes();
    const ParamReport pr = count_source_params(*m.source, c);
    r.total_params = pr.total;
    r.active_params = pr.active_incl_embd;
    r.params_source = "tensor shapes (analysis/params, embedding counted as active)";
    const WeightTable wt = weight_table(m);  // dense: every non-routed weight per token
    r.decode_bytes = double(wt.pass_bytes + wt.embd_row_bytes);
    for (size_t l = 0; l < wt.expert_bytes.size(); ++l)
        r.decode_bytes += double(wt.expert_bytes[l] * wt.n_expert_used);
}

// Prompt throughput: one batch of the text's first tokens, after a small warm-up; three timed
// runs, the median kept (the machine may be shared); routing counted from the first.
Result<void> measure_prompt_speed(Session& s, std::span<const int32_t> text_ids, int bench_tokens,
                                  int n_batch, RoutingStats* rs, ModelMeasures& r) {
    const int nb = int(std::min<int64_t>(
        {int64_t(bench_tokens), int64_t(text_ids.size()), int64_t(s.n_ctx()), int64_t(n_batch)}));
    if (nb <= 0) return {};
    MOE_TRY(auto warm, s.eval_tokens(text_ids.subspan(0, size_t(std::min(nb, 4))), false));
    std::vector<double> times;
    RouterTrace tr;
    for (int rep = 0; rep < 3; ++rep) {
        s.reset();
        const double tb = now_s();
        MOE_TRY(auto out, s.eval_tokens(text_ids.subspan(0, size_t(nb)), false, 0,
                                        rs && rep == 0 ? &tr : nullptr));
        times.push_back(now_s() - tb);
    }
    s.reset();
    r.bench_tokens = nb;
    r.prompt_tps = nb / std::max(median(times), 1e-9);
    if (rs) MOE_TRY_VOID(rs->add_eval_tokens(tr, nb, n_batch, RoutingPhase::Prefill));
    return {};
}

// One greedy answer with its timings and failures (errors go into PromptRun::error).
PromptRun run_prompt(Session& s, const Tokenizer& tok, const std::string& prompt,
                     const CompareOptions& o, int n_batch, RoutingStats* rs) {
    PromptRun pr;
    pr.prompt = prompt;
    s.reset();
    const auto ids = tok.encode(prompt, /*add_bos=*/true, /*parse_special=*/true);
    Sampler sampler(compare_sampler_params());
    std::string routing_error;  // the first error of the routing statistics, if any
    RoutingObserver obs;
    if (rs)
        obs = [&](const RouterTrace& t, int64_t n, bool prefill) {
            auto added = rs->add_eval_tokens(
                t, n, n_batch, prefill ? RoutingPhase::Prefill : RoutingPhase::Decode);
            if (!added && routing_error.empty()) routing_error = added.message();
        };
    if (ids.empty()) {
        pr.error = "the prompt encodes to no tokens";
    } else {
        auto st = generate(
            s, tok, ids, o.n_predict, sampler,
            [&](std::string_view piece) {
                pr.output.append(piece);
                return true;
            },
            0, obs);
        if (!st) {
            pr.error = st.message();
        } else {
            pr.n_prompt = st->n_prompt;
            pr.n_generated = st->n_generated;
            pr.prompt_seconds = st->prompt_seconds;
            pr.gen_seconds = st->gen_seconds;
            pr.stopped_by_eog = st->stopped_by_eog;
        }
        if (pr.error.empty() && !routing_error.empty())
            pr.error = "routing statistics: " + routing_error;
    }
    const auto out_ids = tok.encode(pr.output, false, false);
    pr.failures = detect_failures(pr.output, out_ids, o.repeat_threshold, &pr.repeat_share);
    pr.output = utf8::sanitize(pr.output);  // reports and JSON need valid UTF-8
    if (!pr.error.empty()) pr.failures.insert(pr.failures.begin(), "error: " + pr.error);
    return pr;
}

// Perplexity and bits per byte on the evaluation text (errors go into ppl_error).
void measure_perplexity(const Model& m, const Tokenizer& tok, const std::string& text,
                        const std::vector<int32_t>& text_ids, int n_ctx, const CompareOptions& o,
                        ModelMeasures& r) {
    PerplexityOptions po;
    po.n_ctx =
        int(std::min<int64_t>({int64_t(o.ppl_ctx), int64_t(n_ctx), int64_t(text_ids.size())}));
    po.bos = tok.add_bos() ? tok.bos() : -1;
    po.batch1_windows = 0;
    po.max_windows = o.ppl_windows;
    po.n_threads = o.n_threads;
    po.kv_types = o.kv_types;
    r.ppl_ctx = po.n_ctx;
    auto pp = evaluate_perplexity(m, nullptr, text_ids, po);
    if (!pp) {
        r.ppl_error = pp.message();
        return;
    }
    r.ppl = pp->ppl;
    r.ppl_stderr = pp->ppl_stderr;
    r.ppl_scored = pp->n_scored;
    // Bits per byte: NLL per token, times tokens per byte of the text (vocabulary-free).
    r.bits_per_byte = text.empty()
                          ? 0.0
                          : pp->nll / std::log(2.0) * double(text_ids.size()) / double(text.size());
}

// The optional top-k sweep (on the perplexity windows) and routing per domain; a dense model
// gets a note instead, as does an error.
void measure_routing_sections(const Model& m, const Tokenizer& tok,
                              const std::vector<int32_t>& text_ids, int n_ctx,
                              const CompareOptions& o, ModelMeasures& r) {
    const bool dense = m.config.n_moe_layers() == 0;
    if (!o.top_k_sweep.empty()) {
        if (dense) {
            r.top_k_sweep_note = "the dense model has no routing to sweep";
        } else if (auto ks = parse_top_k_list(o.top_k_sweep, m.config); !ks) {
            r.top_k_sweep_note = ks.message();
        } else {
            SweepOptions so;
            so.ppl.n_ctx = int(
                std::min<int64_t>({int64_t(o.ppl_ctx), int64_t(n_ctx), int64_t(text_ids.size())}));
            so.ppl.bos = tok.add_bos() ? tok.bos() : -1;
            so.ppl.max_windows = o.ppl_windows;
            so.ppl.n_threads = o.n_threads;
            so.ppl.kv_types = o.kv_types;
            so.decode_tokens = o.sweep_decode_tokens;
            auto sw = run_top_k_sweep(m, text_ids, *ks, so);
            if (sw)
                r.top_k_sweep = sweep_json(*sw);
            else
                r.top_k_sweep_note = "top-k sweep failed: " + sw.message();
        }
    }
    if (!o.domains.empty()) {
        if (dense) {
            r.domains_note = "the dense model has no routing to compare across domains";
        } else {
            DomainOptions dopt = o.domain_opt;
            dopt.n_threads = o.n_threads;
            dopt.kv_types = o.kv_types;
            auto d = measure_domains(m, tok, o.domains, dopt);
            if (d)
                r.domains = std::move(*d);
            else
                r.domains_note = "routing per domain failed: " + d.message();
        }
    }
}

}  // namespace

std::vector<DomainText> default_domain_texts() {
    const std::filesystem::path dir = std::filesystem::path(default_eval_text_path()).parent_path();
    std::vector<DomainText> out;
    for (const char* n : {"argument", "wisdom", "vision"})
        out.push_back({n, (dir / (std::string("domain-") + n + ".txt")).string()});
    return out;
}

std::vector<std::string> default_compare_prompts() {
    return {"And the LORD said unto Moses,", "In the beginning God created",
            "Blessed are the poor in spirit:"};
}

std::string default_eval_text_path() {
    return bundled_file("data", "eval-kjv.txt");
}

ModelMeasures measure_model(const std::string& path, const CompareOptions& o) {
    ModelMeasures r;
    r.path = path;
    if (const auto pm = read_process_memory()) r.rss_start = pm->rss;
    const double t0 = now_s();
    auto model = load_model(path);
    if (!model) {
        r.error = model.message();
        return r;
    }
    const Model& m = **model;
    auto tok = Tokenizer::from_source(*m.source);
    if (!tok) {
        r.error = fmt::format("{}: {}", path, tok.message());
        return r;
    }
    SessionOptions so;
    so.n_threads = o.n_threads;
    so.kv_types = o.kv_types;
    auto session = Session::create(m, so);
    if (!session) {
        r.error = session.message();
        return r;
    }
    Session& s = **session;
    r.load_seconds = now_s() - t0;
    describe_model(m, r);
    std::unique_ptr<RoutingStats> rs;
    if (r.n_moe_layers > 0) rs = std::make_unique<RoutingStats>(m);

    auto text = read_input_file(o.text_path);
    if (!text) {
        r.error = fmt::format("cannot open the evaluation text: {}", text.message());
        return r;
    }
    const std::vector<int32_t> text_ids =
        (*tok)->encode(*text, /*add_bos=*/true, /*parse_special=*/false);
    r.ppl_tokens = int64_t(text_ids.size());
    if (auto sp = measure_prompt_speed(s, text_ids, o.bench_tokens, so.n_batch, rs.get(), r); !sp) {
        r.error = sp.message();
        return r;
    }

    std::vector<double> gen_rates;  // per prompt; the median is reported
    for (const auto& p : o.prompts.empty() ? default_compare_prompts() : o.prompts) {
        r.prompts.push_back(run_prompt(s, **tok, p, o, so.n_batch, rs.get()));
        const PromptRun& pr = r.prompts.back();
        if (pr.error.empty() && pr.n_generated > 0 && pr.gen_seconds > 0)
            gen_rates.push_back(pr.n_generated / pr.gen_seconds);
    }
    r.gen_tps = median(gen_rates);

    measure_perplexity(m, **tok, *text, text_ids, s.n_ctx(), o, r);
    if (rs) {
        r.routing = rs->to_json();
        if (r.routing.contains("weights"))
            r.decode_bytes = r.routing["weights"].value("bytes_per_token_decode", r.decode_bytes);
    }
    if (const auto pm = read_process_memory()) r.rss_peak = pm->peak_rss;
    // After the peak RSS: the sweep's extra sessions are not the model's cost of serving.
    if (!o.top_k_sweep.empty() || !o.domains.empty())
        measure_routing_sections(m, **tok, text_ids, s.n_ctx(), o, r);
    return r;
}

}  // namespace moe
