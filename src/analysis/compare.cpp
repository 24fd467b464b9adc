#include "analysis/compare.h"

#include "core/input_file.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "analysis/params.h"
#include "analysis/perplexity.h"
#include "analysis/routing_report.h"
#include "analysis/routing_stats.h"
#include "core/sysinfo.h"
#include "core/utf8.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace moe {

using nlohmann::json;

namespace {

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string stem(const std::string& path) {
    std::filesystem::path p(path);
    if (p.filename().empty()) p = p.parent_path();
    std::string s = p.filename().string();
    if (s.size() > 5 && s.substr(s.size() - 5) == ".gguf") s.resize(s.size() - 5);
    return s;
}

}  // namespace

std::vector<std::string> default_compare_prompts() {
    return {"And the LORD said unto Moses,", "In the beginning God created",
            "Blessed are the poor in spirit:"};
}

std::string default_eval_text_path() {
    namespace fs = std::filesystem;
    std::vector<fs::path> dirs = {fs::current_path() / "data"};
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        dirs.push_back(exe.parent_path().parent_path() / "data");
        dirs.push_back(exe.parent_path().parent_path() / "share" / "moeinfer" / "data");
    }
    for (const auto& d : dirs)
        if (fs::exists(d / "eval-kjv.txt", ec)) return (d / "eval-kjv.txt").string();
    return (dirs[0] / "eval-kjv.txt").string();
}

double repeated_ngram_share(const std::vector<int32_t>& ids, int n) {
    if (n <= 0 || int(ids.size()) < 2 * n) return 0.0;
    std::set<std::vector<int32_t>> seen;
    int64_t total = 0, repeats = 0;
    for (size_t i = 0; i + size_t(n) <= ids.size(); ++i) {
        std::vector<int32_t> g(ids.begin() + ptrdiff_t(i), ids.begin() + ptrdiff_t(i) + n);
        ++total;
        if (!seen.insert(std::move(g)).second) ++repeats;
    }
    return total ? double(repeats) / double(total) : 0.0;
}

std::vector<std::string> detect_failures(const std::string& text, const std::vector<int32_t>& ids,
                                         double threshold, double* repeat_share) {
    std::vector<std::string> f;
    const double rep = repeated_ngram_share(ids, 4);
    if (repeat_share) *repeat_share = rep;
    bool blank = true;
    for (char c : text)
        if (!std::isspace(static_cast<unsigned char>(c))) blank = false;
    if (blank) f.push_back("empty output");
    if (rep > threshold)
        f.push_back(fmt::format("repetition loop ({:.0f}% of 4-grams repeated)", rep * 100));
    if (!utf8::is_valid(text)) f.push_back("invalid UTF-8");
    return f;
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
    auto session = Session::create(m, so);
    if (!session) {
        r.error = session.message();
        return r;
    }
    Session& s = **session;
    r.load_seconds = now_s() - t0;

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

    std::unique_ptr<RoutingStats> rs;
    if (r.n_moe_layers > 0) rs = std::make_unique<RoutingStats>(m);
    {
        const WeightTable wt = weight_table(m);  // dense: every non-routed weight per token
        r.decode_bytes = double(wt.pass_bytes + wt.embd_row_bytes);
        for (size_t l = 0; l < wt.expert_bytes.size(); ++l)
            r.decode_bytes += double(wt.expert_bytes[l] * wt.n_expert_used);
    }

    // The evaluation text.
    std::string text;
    {
        auto t = read_input_file(o.text_path);
        if (!t) {
            r.error = fmt::format("cannot open the evaluation text: {}", t.message());
            return r;
        }
        text = std::move(*t);
    }
    const std::vector<int32_t> text_ids =
        (*tok)->encode(text, /*add_bos=*/true, /*parse_special=*/false);
    r.ppl_tokens = int64_t(text_ids.size());

    // Prompt throughput: one batch of the text's first tokens (after a small warm-up).
    const int nb = int(std::min<int64_t>({int64_t(o.bench_tokens), int64_t(text_ids.size()),
                                          int64_t(s.n_ctx()), int64_t(so.n_batch)}));
    if (nb > 0) {
        const std::span<const int32_t> all(text_ids);
        if (auto w = s.eval_tokens(all.subspan(0, size_t(std::min(nb, 4))), false); !w) {
            r.error = w.message();
            return r;
        }
        // Three timed runs, the median kept (the machine may be shared); routing from the first.
        std::vector<double> times;
        RouterTrace tr;
        for (int rep = 0; rep < 3; ++rep) {
            s.reset();
            const double tb = now_s();
            auto out =
                s.eval_tokens(all.subspan(0, size_t(nb)), false, 0, rs && rep == 0 ? &tr : nullptr);
            times.push_back(now_s() - tb);
            if (!out) {
                r.error = out.message();
                return r;
            }
        }
        s.reset();
        std::sort(times.begin(), times.end());
        r.bench_tokens = nb;
        r.prompt_tps = nb / std::max(times[1], 1e-9);
        if (rs) (void)rs->add_eval_tokens(tr, nb, so.n_batch, RoutingPhase::Prefill);
    }

    // Prompts, greedy.
    const std::vector<std::string> prompts =
        o.prompts.empty() ? default_compare_prompts() : o.prompts;
    std::vector<double> gen_rates;  // per prompt; the median is reported
    for (const auto& p : prompts) {
        PromptRun pr_;
        pr_.prompt = p;
        s.reset();
        const auto ids = (*tok)->encode(p, /*add_bos=*/true, /*parse_special=*/true);
        SamplerParams sp;
        sp.temp = 0;
        Sampler sampler(sp);
        RoutingObserver obs;
        if (rs)
            obs = [&](const RouterTrace& t, int64_t n, bool prefill) {
                (void)rs->add_eval_tokens(t, n, so.n_batch,
                                          prefill ? RoutingPhase::Prefill : RoutingPhase::Decode);
            };
        if (ids.empty()) {
            pr_.error = "the prompt encodes to no tokens";
        } else {
            auto st = generate(
                s, **tok, ids, o.n_predict, sampler,
                [&](std::string_view piece) {
                    pr_.output.append(piece);
                    return true;
                },
                0, obs);
            if (!st) {
                pr_.error = st.message();
            } else {
                pr_.n_prompt = st->n_prompt;
                pr_.n_generated = st->n_generated;
                pr_.prompt_seconds = st->prompt_seconds;
                pr_.gen_seconds = st->gen_seconds;
                pr_.stopped_by_eog = st->stopped_by_eog;
                if (st->n_generated > 0 && st->gen_seconds > 0)
                    gen_rates.push_back(st->n_generated / st->gen_seconds);
            }
        }
        const auto out_ids = (*tok)->encode(pr_.output, false, false);
        pr_.failures = detect_failures(pr_.output, out_ids, o.repeat_threshold, &pr_.repeat_share);
        pr_.output = utf8::sanitize(pr_.output);  // reports and JSON need valid UTF-8
        if (!pr_.error.empty()) pr_.failures.insert(pr_.failures.begin(), "error: " + pr_.error);
        r.prompts.push_back(std::move(pr_));
    }
    std::sort(gen_rates.begin(), gen_rates.end());
    const size_t ng = gen_rates.size();
    r.gen_tps = ng == 0  ? 0.0
                : ng % 2 ? gen_rates[ng / 2]
                         : (gen_rates[ng / 2 - 1] + gen_rates[ng / 2]) / 2;

    // Perplexity.
    PerplexityOptions po;
    po.n_ctx =
        int(std::min<int64_t>({int64_t(o.ppl_ctx), int64_t(s.n_ctx()), int64_t(text_ids.size())}));
    po.bos = (*tok)->add_bos() ? (*tok)->bos() : -1;
    po.batch1_windows = 0;
    po.max_windows = o.ppl_windows;
    po.n_threads = o.n_threads;
    r.ppl_ctx = po.n_ctx;
    auto pp = evaluate_perplexity(m, nullptr, text_ids, po);
    if (!pp) {
        r.ppl_error = pp.message();
    } else {
        r.ppl = pp->ppl;
        r.ppl_stderr = pp->ppl_stderr;
        r.ppl_scored = pp->n_scored;
        // Bits per byte: NLL per token, times tokens per byte of the text (vocabulary-free).
        r.bits_per_byte =
            text.empty() ? 0.0
                         : pp->nll / std::log(2.0) * double(text_ids.size()) / double(text.size());
    }
    if (rs) {
        r.routing = rs->to_json();
        if (r.routing.contains("weights"))
            r.decode_bytes = r.routing["weights"].value("bytes_per_token_decode", r.decode_bytes);
    }
    if (const auto pm = read_process_memory()) r.rss_peak = pm->peak_rss;
    return r;
}

ModelMeasures measure_model_isolated(const std::string& path, const CompareOptions& o) {
    int fds[2];
    if (pipe(fds) != 0) return measure_model(path, o);
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return measure_model(path, o);
    }
    if (pid == 0) {
        close(fds[0]);
        ModelMeasures m = measure_model(path, o);
        m.rss_isolated = true;
        const std::string s = to_json(m).dump(-1, ' ', false, json::error_handler_t::replace);
        size_t off = 0;
        while (off < s.size()) {
            const ssize_t w = write(fds[1], s.data() + off, s.size() - off);
            if (w <= 0) break;
            off += size_t(w);
        }
        close(fds[1]);
        _exit(off == s.size() ? 0 : 3);
    }
    close(fds[1]);
    std::string buf;
    char tmp[65536];
    for (;;) {
        const ssize_t n = read(fds[0], tmp, sizeof tmp);
        if (n > 0) {
            buf.append(tmp, size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ModelMeasures r;
    r.path = path;
    if (WIFSIGNALED(status)) {
        r.error = fmt::format("measuring {} crashed (signal {})", path, WTERMSIG(status));
        return r;
    }
    const json j = json::parse(buf, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
        r.error = fmt::format("measuring {} failed (child exit status {})", path,
                              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return r;
    }
    return measures_from_json(j);
}

json to_json(const ModelMeasures& m) {
    json j;
    j["path"] = m.path, j["family"] = m.family, j["name"] = m.name, j["arch"] = m.arch;
    j["error"] = m.error;
    j["total_params"] = m.total_params, j["active_params"] = m.active_params;
    j["params_source"] = m.params_source;
    j["disk_bytes"] = m.disk_bytes;
    j["n_vocab"] = m.n_vocab, j["n_moe_layers"] = m.n_moe_layers;
    j["n_expert"] = m.n_expert, j["n_expert_used"] = m.n_expert_used;
    j["load_seconds"] = m.load_seconds;
    j["rss_start"] = m.rss_start, j["rss_peak"] = m.rss_peak, j["rss_isolated"] = m.rss_isolated;
    j["bench_tokens"] = m.bench_tokens, j["decode_bytes"] = m.decode_bytes;
    j["prompt_tps"] = m.prompt_tps, j["gen_tps"] = m.gen_tps;
    j["ppl_error"] = m.ppl_error;
    j["ppl"] = m.ppl, j["ppl_stderr"] = m.ppl_stderr, j["bits_per_byte"] = m.bits_per_byte;
    j["ppl_tokens"] = m.ppl_tokens, j["ppl_scored"] = m.ppl_scored, j["ppl_ctx"] = m.ppl_ctx;
    j["routing"] = m.routing;
    json ps = json::array();
    for (const auto& p : m.prompts)
        ps.push_back({{"prompt", p.prompt},
                      {"output", p.output},
                      {"error", p.error},
                      {"n_prompt", p.n_prompt},
                      {"n_generated", p.n_generated},
                      {"prompt_seconds", p.prompt_seconds},
                      {"gen_seconds", p.gen_seconds},
                      {"stopped_by_eog", p.stopped_by_eog},
                      {"repeat_share", p.repeat_share},
                      {"failures", p.failures}});
    j["prompts"] = ps;
    return j;
}

ModelMeasures measures_from_json(const json& j) {
    ModelMeasures m;
    m.path = j.value("path", ""), m.family = j.value("family", ""), m.name = j.value("name", "");
    m.arch = j.value("arch", ""), m.error = j.value("error", "");
    m.total_params = j.value("total_params", int64_t(0)),
    m.active_params = j.value("active_params", int64_t(0));
    m.params_source = j.value("params_source", "");
    m.disk_bytes = j.value("disk_bytes", uint64_t(0));
    m.n_vocab = j.value("n_vocab", 0), m.n_moe_layers = j.value("n_moe_layers", 0);
    m.n_expert = j.value("n_expert", 0), m.n_expert_used = j.value("n_expert_used", 0);
    m.load_seconds = j.value("load_seconds", 0.0);
    m.rss_start = j.value("rss_start", uint64_t(0)), m.rss_peak = j.value("rss_peak", uint64_t(0));
    m.rss_isolated = j.value("rss_isolated", false);
    m.bench_tokens = j.value("bench_tokens", 0), m.decode_bytes = j.value("decode_bytes", 0.0);
    m.prompt_tps = j.value("prompt_tps", 0.0), m.gen_tps = j.value("gen_tps", 0.0);
    m.ppl_error = j.value("ppl_error", "");
    m.ppl = j.value("ppl", 0.0), m.ppl_stderr = j.value("ppl_stderr", 0.0);
    m.bits_per_byte = j.value("bits_per_byte", 0.0);
    m.ppl_tokens = j.value("ppl_tokens", int64_t(0)),
    m.ppl_scored = j.value("ppl_scored", int64_t(0));
    m.ppl_ctx = j.value("ppl_ctx", 0);
    if (j.contains("routing")) m.routing = j["routing"];
    if (j.contains("prompts") && j["prompts"].is_array())
        for (const auto& p : j["prompts"]) {
            PromptRun r;
            r.prompt = p.value("prompt", ""), r.output = p.value("output", ""),
            r.error = p.value("error", "");
            r.n_prompt = p.value("n_prompt", 0), r.n_generated = p.value("n_generated", 0);
            r.prompt_seconds = p.value("prompt_seconds", 0.0),
            r.gen_seconds = p.value("gen_seconds", 0.0);
            r.stopped_by_eog = p.value("stopped_by_eog", false);
            r.repeat_share = p.value("repeat_share", 0.0);
            if (p.contains("failures")) r.failures = p["failures"].get<std::vector<std::string>>();
            m.prompts.push_back(std::move(r));
        }
    return m;
}

// ---------------------------------------------------------------------------------------------
// Reports

namespace {

struct Names {
    std::string a, b;
};

Names short_names(const ModelMeasures& a, const ModelMeasures& b) {
    std::string x = stem(a.path), y = stem(b.path);
    if (x.empty()) x = "A";
    if (y.empty()) y = "B";
    if (x == y) x = "A: " + x, y = "B: " + y;
    return {x, y};
}

int failure_count(const ModelMeasures& m) {
    int n = 0;
    for (const auto& p : m.prompts) n += p.failures.empty() ? 0 : 1;
    return n;
}

bool has_ppl(const ModelMeasures& m) {
    return m.error.empty() && m.ppl_error.empty() && m.ppl > 0;
}

// Perplexities per token are comparable only over the same tokens.
bool same_tokens(const ModelMeasures& a, const ModelMeasures& b) {
    return a.n_vocab == b.n_vocab && a.ppl_tokens == b.ppl_tokens && a.ppl_ctx == b.ppl_ctx;
}

double imbalance(const ModelMeasures& m, const char* key) {
    if (m.routing.is_null() || !m.routing.contains("summary")) return NAN;
    return m.routing["summary"].value(key, NAN);
}

// One row of the measures table: label, both values as text, which is better (-1 none, 0 a, 1 b).
struct Row {
    std::string label, va, vb;
    int better = -1;
};

int pick(double a, double b, bool higher_better) {
    if (!std::isfinite(a) || !std::isfinite(b) || a == b) return -1;
    return (a > b) == higher_better ? 0 : 1;
}

std::vector<Row> measure_rows(const ModelMeasures& a, const ModelMeasures& b) {
    std::vector<Row> rows;
    auto both = [&](const std::string& label, auto f, int better = -1) {
        rows.push_back({label, a.error.empty() ? f(a) : "—", b.error.empty() ? f(b) : "—", better});
    };
    both("family / architecture", [](const ModelMeasures& m) {
        std::string s = m.family + " (" + m.arch + ")";
        if (m.n_moe_layers)
            s += fmt::format(", {} experts top-{} in {} layers", m.n_expert, m.n_expert_used,
                             m.n_moe_layers);
        else
            s += ", dense";
        return s;
    });
    both("total parameters",
         [](const ModelMeasures& m) { return group_thousands(m.total_params); });
    both(
        "active parameters / token",
        [](const ModelMeasures& m) { return group_thousands(m.active_params); },
        pick(double(a.active_params), double(b.active_params), false));
    both(
        "disk size", [](const ModelMeasures& m) { return human_bytes(double(m.disk_bytes)); },
        pick(double(a.disk_bytes), double(b.disk_bytes), false));
    both(
        "load time",
        [](const ModelMeasures& m) { return fmt::format("{:.1f} ms", m.load_seconds * 1e3); },
        pick(a.load_seconds, b.load_seconds, false));
    both(
        "peak RSS",
        [](const ModelMeasures& m) {
            return human_bytes(double(m.rss_peak)) +
                   (m.rss_isolated ? "" : " (process, not isolated)");
        },
        pick(double(a.rss_peak), double(b.rss_peak), false));
    both(
        "prompt tok/s",
        [](const ModelMeasures& m) {
            return fmt::format("{:.1f} ({}-token batch, median of 3)", m.prompt_tps,
                               m.bench_tokens);
        },
        pick(a.prompt_tps, b.prompt_tps, true));
    both(
        "generation tok/s (median of prompts)",
        [](const ModelMeasures& m) { return fmt::format("{:.1f}", m.gen_tps); },
        pick(a.gen_tps, b.gen_tps, true));
    both(
        "generation tok/s × active params",
        [](const ModelMeasures& m) {
            return fmt::format("{} param-tokens/s",
                               human_count(m.gen_tps * double(m.active_params)));
        },
        pick(a.gen_tps * double(a.active_params), b.gen_tps * double(b.active_params), true));
    const bool cmp_ppl = has_ppl(a) && has_ppl(b) && same_tokens(a, b);
    both(
        "perplexity (eval text)",
        [](const ModelMeasures& m) {
            if (!m.ppl_error.empty()) return "error: " + m.ppl_error;
            return fmt::format("{:.3f} ± {:.3f} ({} tokens scored, window {})", m.ppl, m.ppl_stderr,
                               m.ppl_scored, m.ppl_ctx);
        },
        cmp_ppl ? pick(a.ppl, b.ppl, false) : -1);
    both(
        "bits per byte (eval text)",
        [](const ModelMeasures& m) {
            return m.ppl_error.empty() ? fmt::format("{:.4f}", m.bits_per_byte) : std::string("—");
        },
        has_ppl(a) && has_ppl(b) ? pick(a.bits_per_byte, b.bits_per_byte, false) : -1);
    both(
        "routing imbalance (max/mean, CV)",
        [](const ModelMeasures& m) {
            if (m.routing.is_null()) return std::string("dense (no routing)");
            return fmt::format("{:.2f} / {:.3f} (worst layer {:.2f})",
                               imbalance(m, "mean_max_over_mean"), imbalance(m, "mean_cv"),
                               imbalance(m, "max_max_over_mean"));
        },
        pick(imbalance(a, "mean_max_over_mean"), imbalance(b, "mean_max_over_mean"), false));
    both(
        "weight bytes read / generated token",
        [](const ModelMeasures& m) { return human_bytes(m.decode_bytes); },
        pick(a.decode_bytes, b.decode_bytes, false));
    both(
        "prompts with failures",
        [](const ModelMeasures& m) {
            return fmt::format("{} of {}", failure_count(m), m.prompts.size());
        },
        pick(failure_count(a), failure_count(b), false));
    return rows;
}

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

std::string prompt_timing(const PromptRun& p) {
    return fmt::format(
        "{} prompt tokens in {:.1f} ms; {} tokens generated in {:.1f} ms ({:.1f} tok/s){}",
        p.n_prompt, p.prompt_seconds * 1e3, p.n_generated, p.gen_seconds * 1e3,
        p.gen_seconds > 0 ? p.n_generated / p.gen_seconds : 0.0,
        p.stopped_by_eog ? ", stopped at end of text" : "");
}

std::string failures_text(const PromptRun& p) {
    if (p.failures.empty()) return "none";
    std::string s;
    for (const auto& f : p.failures) s += (s.empty() ? "" : "; ") + f;
    return s;
}

}  // namespace

std::string compare_recommendation(const ModelMeasures& a, const ModelMeasures& b,
                                   uint64_t mem_available) {
    const Names n = short_names(a, b);
    if (!a.error.empty() || !b.error.empty()) {
        std::string s;
        if (!a.error.empty()) s += fmt::format("{} could not be measured ({}). ", n.a, a.error);
        if (!b.error.empty()) s += fmt::format("{} could not be measured ({}). ", n.b, b.error);
        s += "No comparison can be made from one side.";
        return s;
    }
    std::vector<std::string> parts;
    // Speed.
    const bool a_fast = a.gen_tps >= b.gen_tps;
    const auto& F = a_fast ? a : b;
    const auto& S = a_fast ? b : a;
    const std::string fn = a_fast ? n.a : n.b, sn = a_fast ? n.b : n.a;
    const double speed_ratio = S.gen_tps > 0 ? F.gen_tps / S.gen_tps : INFINITY;
    parts.push_back(
        fmt::format("{} generates {:.2f}x faster than {} ({:.1f} vs {:.1f} tok/s, greedy).", fn,
                    speed_ratio, sn, F.gen_tps, S.gen_tps));
    // Per active parameter.
    const double ea = a.gen_tps * double(a.active_params), eb = b.gen_tps * double(b.active_params);
    const double active_ratio =
        F.active_params > 0 ? double(S.active_params) / double(F.active_params) : 0;
    parts.push_back(fmt::format(
        "Per active parameter {} is the faster one ({} vs {} param-tokens/s): {} activates {} "
        "parameters per token against {}'s {}, so active parameters alone predict a {:.2f}x speed "
        "ratio where {:.2f}x was measured{}.",
        ea >= eb ? n.a : n.b, human_count(std::max(ea, eb)), human_count(std::min(ea, eb)), fn,
        group_thousands(F.active_params), sn, group_thousands(S.active_params), active_ratio,
        speed_ratio,
        speed_ratio < active_ratio * 0.8
            ? " (the faster model pays an overhead beyond its active weights, "
              "e.g. routing or memory traffic)"
        : speed_ratio > active_ratio * 1.25 ? " (more than the parameter count explains)"
                                            : " (consistent with the parameter count)"));
    // Quality.
    int better_q = -1;  // 0 a, 1 b
    bool q_clear = false;
    double q_pct = 0;
    if (has_ppl(a) && has_ppl(b)) {
        if (same_tokens(a, b)) {
            better_q = a.ppl <= b.ppl ? 0 : 1;
            const double lo = std::min(a.ppl, b.ppl), hi = std::max(a.ppl, b.ppl);
            q_pct = (hi - lo) / hi * 100;
            const double se = std::sqrt(a.ppl_stderr * a.ppl_stderr + b.ppl_stderr * b.ppl_stderr);
            q_clear = hi - lo > 2 * se;
            parts.push_back(fmt::format(
                "{} has the lower perplexity on the evaluation text ({:.3f} vs {:.3f}, {:.1f}% "
                "lower), "
                "a difference {} two standard errors ({:.3f}).",
                better_q == 0 ? n.a : n.b, lo, hi, q_pct, q_clear ? "beyond" : "within", 2 * se));
        } else {
            better_q = a.bits_per_byte <= b.bits_per_byte ? 0 : 1;
            const double lo = std::min(a.bits_per_byte, b.bits_per_byte);
            const double hi = std::max(a.bits_per_byte, b.bits_per_byte);
            q_pct = hi > 0 ? (hi - lo) / hi * 100 : 0;
            q_clear = q_pct > 2;
            parts.push_back(fmt::format(
                "The vocabularies differ, so perplexities per token are not comparable; per byte "
                "of "
                "text {} predicts better ({:.4f} vs {:.4f} bits per byte, {:.1f}% lower).",
                better_q == 0 ? n.a : n.b, lo, hi, q_pct));
        }
    } else {
        parts.push_back("Perplexity could not be measured for both models.");
    }
    // Memory.
    auto fits = [&](const ModelMeasures& m) {
        return mem_available == 0 || m.rss_peak <= mem_available;
    };
    if (mem_available > 0) {
        const bool fa = fits(a), fb = fits(b);
        parts.push_back(
            fmt::format("Peak resident memory is {} for {} and {} for {}; with {} available {}.",
                        human_bytes(double(a.rss_peak)), n.a, human_bytes(double(b.rss_peak)), n.b,
                        human_bytes(double(mem_available)),
                        fa && fb ? "both fit"
                        : fa     ? "only " + n.a + " fits"
                        : fb     ? "only " + n.b + " fits"
                                 : "neither fits"));
    } else {
        parts.push_back(fmt::format("Peak resident memory is {} for {} and {} for {}.",
                                    human_bytes(double(a.rss_peak)), n.a,
                                    human_bytes(double(b.rss_peak)), n.b));
    }
    const int fa = failure_count(a), fb = failure_count(b);
    if (fa || fb)
        parts.push_back(
            fmt::format("Failures were seen in {} of {} answers of {} and {} of {} of {}.", fa,
                        a.prompts.size(), n.a, fb, b.prompts.size(), n.b));
    // Verdict.
    const int fast_idx = a_fast ? 0 : 1;
    const std::string qn = better_q == 0 ? n.a : n.b;
    std::string verdict;
    if (better_q < 0) {
        verdict = fmt::format("Without a quality measure for both, prefer {} for speed.", fn);
    } else if (speed_ratio < 1.05) {
        verdict = q_clear ? fmt::format(
                                "Both run at about the same speed, so the better {} is the "
                                "choice.",
                                qn)
                          : "Both run at about the same speed and their quality is "
                            "indistinguishable on this text: either will do; prefer the smaller "
                            "memory footprint.";
    } else if (better_q == fast_idx) {
        verdict = q_clear ? fmt::format("{} is both faster and better on this text: prefer it.", fn)
                          : fmt::format(
                                "{} is faster and no worse on this text (its lower perplexity "
                                "is within noise): prefer it.",
                                fn);
    } else if (!q_clear) {
        verdict = fmt::format(
            "The quality difference is not significant on this text, so the faster {} is the "
            "better "
            "choice.",
            fn);
    } else {
        verdict = fmt::format(
            "This is a trade-off: choose {} for speed ({:.2f}x) or {} for quality ({:.1f}% lower "
            "perplexity).",
            fn, speed_ratio, qn, q_pct);
    }
    const ModelMeasures& chosen =
        better_q >= 0 && better_q != fast_idx && q_clear ? (better_q == 0 ? a : b) : F;
    if (!fits(chosen)) verdict += " Note that it does not fit in the available memory.";
    parts.push_back(verdict);
    std::string s;
    for (const auto& p : parts) s += (s.empty() ? "" : " ") + p;
    return s;
}

std::string compare_markdown(const ModelMeasures& a, const ModelMeasures& b,
                             const CompareOptions& o, uint64_t mem_available) {
    const Names n = short_names(a, b);
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

std::string compare_html(const ModelMeasures& a, const ModelMeasures& b, const CompareOptions& o,
                         uint64_t mem_available) {
    const Names n = short_names(a, b);
    const std::string ca = "#2c7fb8", cb = "#f28e2b";
    std::string h =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
        html_escape("moeinfer compare: " + n.a + " vs " + n.b) + "</title>\n<style>" +
        report_css() + "</style>\n</head>\n<body>\n";
    h += "<h1>" + html_escape("Compare: " + n.a + " vs " + n.b) + "</h1>\n";
    h += "<p class=\"note\">" + html_escape(a.path) + " &nbsp;vs&nbsp; " + html_escape(b.path) +
         "</p>\n";
    for (const auto* m : {&a, &b})
        if (!m->error.empty())
            h += "<p class=\"bad\">error measuring " + html_escape(m->path) + ": " +
                 html_escape(m->error) + "</p>\n";

    // Key charts.
    auto chart = [&](const std::string& title, const std::string& unit, double va, double vb,
                     int digits) {
        BarChartOptions op;
        op.title = title;
        op.y_label = unit;
        op.width = 270;
        op.height = 230;
        op.digits = digits;
        return "<div class=\"chart\">" +
               bar_chart_svg({""}, {{n.a, ca, {va}}, {n.b, cb, {vb}}}, op) + "</div>\n";
    };
    h += "<h2>Key measures</h2>\n<div class=\"charts\">\n";
    h += chart("generation speed", "tok/s", a.gen_tps, b.gen_tps, 1);
    h += chart("prompt speed", "tok/s", a.prompt_tps, b.prompt_tps, 0);
    if (has_ppl(a) && has_ppl(b)) {
        if (same_tokens(a, b))
            h += chart("perplexity (lower is better)", "perplexity", a.ppl, b.ppl, 2);
        else
            h += chart("bits per byte (lower is better)", "bits/byte", a.bits_per_byte,
                       b.bits_per_byte, 3);
    }
    h += chart("active params / token", "millions", double(a.active_params) / 1e6,
               double(b.active_params) / 1e6, 2);
    h +=
        chart("peak RSS", "MiB", double(a.rss_peak) / 1048576.0, double(b.rss_peak) / 1048576.0, 1);
    h += "</div>\n";

    h += "<h2>Measures</h2>\n<table>\n<tr><th>measure</th><th>" + html_escape(n.a) + "</th><th>" +
         html_escape(n.b) + "</th></tr>\n";
    for (const auto& r : measure_rows(a, b))
        h += "<tr><td>" + html_escape(r.label) + "</td><td class=\"num" +
             (r.better == 0 ? " better" : "") + "\">" + html_escape(r.va) + "</td><td class=\"num" +
             (r.better == 1 ? " better" : "") + "\">" + html_escape(r.vb) + "</td></tr>\n";
    h += "</table>\n<p class=\"note\">Green: the better value where one is better.</p>\n";

    h += "<h2>Recommendation</h2>\n<p>" + html_escape(compare_recommendation(a, b, mem_available)) +
         "</p>\n";

    h += "<h2>Prompts</h2>\n<table>\n<tr><th>prompt</th><th>" + html_escape(n.a) + "</th><th>" +
         html_escape(n.b) + "</th></tr>\n";
    const size_t np = std::max(a.prompts.size(), b.prompts.size());
    for (size_t i = 0; i < np; ++i) {
        const std::string p = i < a.prompts.size() ? a.prompts[i].prompt : b.prompts[i].prompt;
        h += "<tr><td>" + html_escape(p) + "</td>";
        for (const auto* m : {&a, &b}) {
            if (i >= m->prompts.size()) {
                h += "<td></td>";
                continue;
            }
            const PromptRun& r = m->prompts[i];
            h += "<td><pre>" + html_escape(r.output.empty() ? "(empty)" : r.output) + "</pre>";
            h += "<p class=\"note\">" + html_escape(prompt_timing(r)) + "</p>";
            h += std::string("<p class=\"") + (r.failures.empty() ? "ok" : "bad") +
                 "\">failures: " + html_escape(failures_text(r)) + "</p></td>";
        }
        h += "</tr>\n";
    }
    h += "</table>\n";

    for (int k = 0; k < 2; ++k) {
        const ModelMeasures& m = k == 0 ? a : b;
        if (m.routing.is_null() || !m.routing.contains("layers")) continue;
        h += "<h2>Routing: " + html_escape(k == 0 ? n.a : n.b) + "</h2>\n";
        h += routing_report_sections(m.routing, k == 0 ? "a-" : "b-");
    }
    h +=
        "<h2>Method</h2>\n<p class=\"note\">" +
        html_escape(fmt::format(
            "Each model is measured in its own child process (peak RSS = its VmHWM, mapped weights "
            "included). Prompt tok/s: one batch of the evaluation text; generation: greedy, {} "
            "tokens "
            "per prompt. Perplexity: {} (KJV Revelation 1-3, public domain), windows of up to {} "
            "tokens scoring their second half. Failures: empty output, invalid UTF-8, more than "
            "{:.0f}% repeated token 4-grams.",
            o.n_predict, o.text_path, o.ppl_ctx, o.repeat_threshold * 100)) +
        "</p>\n";
    h += "</body>\n</html>\n";
    return h;
}

}  // namespace moe
