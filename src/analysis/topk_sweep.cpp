#include "analysis/topk_sweep.h"

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <memory>

#include "analysis/moments.h"
#include "analysis/routing_stats.h"
#include "models/top_k.h"
#include "runtime/session.h"

namespace moe {

Result<std::vector<int>> parse_top_k_list(std::string_view list, const ModelConfig& c) {
    if (c.n_moe_layers() == 0 || c.moe.n_expert <= 0)
        return make_error(
            "--top-k: the model is dense (no MoE layers): there is no routing to "
            "sweep");
    const int n = c.moe.n_expert;
    std::vector<int> ks;
    size_t pos = 0;
    while (true) {
        const size_t comma = list.find(',', pos);
        const std::string_view item =
            list.substr(pos, comma == std::string_view::npos ? list.npos : comma - pos);
        if (item.empty())
            return make_error(
                "--top-k '{}': an empty entry (give numbers or 'all', separated by "
                "commas)",
                list);
        int k = 0;
        if (item == "all") {
            k = n;
        } else {
            const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), k);
            if (ec == std::errc::result_out_of_range)
                return make_error("--top-k '{}': {} is out of range", list, item);
            if (ec != std::errc() || end != item.data() + item.size())
                return make_error("--top-k '{}': '{}' is not a number or 'all'", list, item);
            if (k < 1)
                return make_error("--top-k '{}': {} experts per token is not possible (at least 1)",
                                  list, k);
            if (k > n)
                return make_error(
                    "--top-k '{}': {} is more than the model's {} experts (use "
                    "'all' for every expert)",
                    list, k, n);
        }
        ks.push_back(k);
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
    }
    ks.push_back(native_top_k(c.moe));
    std::sort(ks.begin(), ks.end());
    ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
    return ks;
}

const SweepRow* SweepResult::native() const {
    for (const auto& r : rows)
        if (r.native) return &r;
    return nullptr;
}

namespace {

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::span<const float> row_of(const std::vector<float>& v, int j, int n_vocab) {
    return {v.data() + size_t(j) * size_t(n_vocab), size_t(n_vocab)};
}

int argmax(std::span<const float> v) {
    return int(std::max_element(v.begin(), v.end()) - v.begin());
}

// One k: its model view, session and running sums.
struct Arm {
    int k = 0;
    std::unique_ptr<Model> model;
    std::unique_ptr<Session> sess;
    Moments nll, dnll, kl;
    int64_t top1_same = 0, kept = 0, routed = 0;
    std::vector<double> prompt_s, decode_s;  // seconds per window, per decoded token
};

// Medians: the machine may be shared, and one preempted step must not move the figure.
double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Eval {
    std::vector<float> logits;  // [n_ctx, n_vocab]
    RouterTrace trace;
};

}  // namespace

Result<SweepResult> run_top_k_sweep(const Model& model, std::span<const int32_t> tokens,
                                    const std::vector<int>& ks, const SweepOptions& opt,
                                    const SweepProgress& progress) {
    const ModelConfig& c = model.config;
    const int native = native_top_k(c.moe);
    if (std::find(ks.begin(), ks.end(), native) == ks.end())
        return make_error("the sweep must include the native k {}", native);
    MOE_TRY(const WindowPlan plan, plan_windows(int64_t(tokens.size()), opt.ppl));
    const int n_vocab = c.n_vocab, n_ctx = opt.ppl.n_ctx, n_moe = c.n_moe_layers();
    for (int32_t t : tokens)
        if (t < 0 || t >= n_vocab)
            return make_error("token id {} is outside the vocabulary of {}", t, n_vocab);
    SessionOptions so;  // as evaluate_perplexity: one forward pass per window
    so.n_ctx = n_ctx;
    so.n_batch = n_ctx;
    so.n_threads = opt.ppl.n_threads;
    so.kv_types = opt.ppl.kv_types;

    std::vector<Arm> arms(ks.size());
    size_t ni = 0;
    for (size_t i = 0; i < ks.size(); ++i) {
        arms[i].k = ks[i];
        if (ks[i] == native) ni = i;
        MOE_TRY(arms[i].model, with_top_k(model, ks[i]));
        MOE_TRY(arms[i].sess, Session::create(*arms[i].model, so));
    }

    std::vector<int32_t> win(static_cast<size_t>(n_ctx));
    const int64_t step = opt.ppl.stride > 0 ? opt.ppl.stride : n_ctx;
    std::vector<double> lp, lq;
    for (int w = 0; w < plan.n_windows; ++w) {
        const int64_t start = int64_t(w) * step;
        std::copy(tokens.begin() + start, tokens.begin() + start + n_ctx, win.begin());
        if (opt.ppl.bos >= 0) win[0] = opt.ppl.bos;
        const int lo =
            (w == 0 || opt.ppl.stride == 0) ? plan.score_from : n_ctx - 1 - opt.ppl.stride;
        auto run = [&](Arm& a, Eval& e) -> Result<void> {
            a.sess->reset();
            const double t0 = now_seconds();
            MOE_TRY(e.logits, a.sess->eval_tokens(win, true, 0, n_moe > 0 ? &e.trace : nullptr));
            a.prompt_s.push_back(now_seconds() - t0);
            return {};
        };
        Eval ne;  // the native k first: every other k is compared with it
        MOE_TRY_VOID(run(arms[ni], ne));
        for (size_t i = 0; i < arms.size(); ++i) {
            Arm& a = arms[i];
            Eval own;
            if (i != ni) MOE_TRY_VOID(run(a, own));
            const Eval& e = i == ni ? ne : own;
            for (int j = lo; j < n_ctx - 1; ++j) {
                const auto row = row_of(e.logits, j, n_vocab), nrow = row_of(ne.logits, j, n_vocab);
                const double nll = token_nll(row, win[size_t(j) + 1]);
                a.nll.add(nll);
                a.dnll.add(nll - token_nll(nrow, win[size_t(j) + 1]));
                log_softmax(nrow, lp);
                log_softmax(row, lq);
                double d = 0;
                for (int v = 0; v < n_vocab; ++v)
                    d += std::exp(lp[size_t(v)]) * (lp[size_t(v)] - lq[size_t(v)]);
                a.kl.add(std::max(0.0, d));  // rounding can make an exact zero slightly negative
                a.top1_same += argmax(row) == argmax(nrow);
                for (int l = 0; l < n_moe; ++l) {
                    // route_token lists the chosen experts best first: [0] is the top-1
                    const int32_t top =
                        ne.trace.selected[(size_t(l) * size_t(n_ctx) + size_t(j)) * size_t(native)];
                    const int32_t* sel =
                        &e.trace.selected[(size_t(l) * size_t(n_ctx) + size_t(j)) * size_t(a.k)];
                    a.kept += std::find(sel, sel + a.k, top) != sel + a.k;
                    a.routed++;
                }
            }
        }
        if (progress) progress(w + 1, plan.n_windows);
    }

    // Decode: the first tokens of the first window one at a time, the arms taking turns; the
    // first kWarm steps (cold caches) are not timed.
    constexpr int kWarm = 2;
    const int n_dec = opt.decode_tokens > 0 ? std::min(opt.decode_tokens + kWarm, n_ctx) : 0;
    for (auto& a : arms) a.sess->reset();
    for (int t = 0; t < n_dec; ++t)
        for (auto& a : arms) {
            const int32_t id = t == 0 && opt.ppl.bos >= 0 ? opt.ppl.bos : tokens[size_t(t)];
            const double t0 = now_seconds();
            MOE_TRY(auto l, a.sess->eval_tokens(std::span<const int32_t>(&id, 1), false));
            (void)l;
            if (t >= kWarm) a.decode_s.push_back(now_seconds() - t0);
        }

    SweepResult r;
    r.n_expert = c.moe.n_expert;
    r.native_k = native;
    r.n_moe_layers = n_moe;
    r.n_ctx = n_ctx;
    r.n_windows = plan.n_windows;
    r.n_tokens = int64_t(tokens.size());
    for (auto& a : arms) {
        SweepRow row;
        row.k = a.k;
        row.native = a.k == native;
        const WeightTable wt = weight_table(*a.model);
        row.active_params = wt.active_params();
        double bytes = double(wt.pass_bytes + wt.embd_row_bytes);
        for (int64_t b : wt.expert_bytes) bytes += double(b) * a.k;
        row.bytes_per_token = bytes;
        const double tp = median(a.prompt_s), td = median(a.decode_s);
        row.prompt_tps = tp > 0 ? double(n_ctx) / tp : 0;
        row.decode_tps = td > 0 ? 1.0 / td : 0;
        static_cast<PplFigure&>(row) = ppl_figure(a.nll);  // as evaluate_perplexity's
        row.dnll_mean = a.dnll.mean();
        row.dnll_stderr = a.dnll.stderr_of_mean();
        row.kl_mean = a.kl.mean();
        row.kl_stderr = a.kl.stderr_of_mean();
        row.top1_agreement = a.kl.n ? double(a.top1_same) / double(a.kl.n) : 0;
        row.native_top1_kept = a.routed ? double(a.kept) / double(a.routed) : 0;
        r.n_scored = row.n_scored;
        r.rows.push_back(row);
    }
    return r;
}

nlohmann::json sweep_json(const SweepResult& r) {
    nlohmann::json j;
    j["n_expert"] = r.n_expert;
    j["native_k"] = r.native_k;
    j["n_moe_layers"] = r.n_moe_layers;
    j["n_ctx"] = r.n_ctx;
    j["n_windows"] = r.n_windows;
    j["n_tokens"] = r.n_tokens;
    j["n_scored"] = r.n_scored;
    auto& rows = j["rows"] = nlohmann::json::array();
    for (const auto& x : r.rows) {
        nlohmann::json row = {{"k", x.k},
                              {"native", x.native},
                              {"active_params", x.active_params},
                              {"bytes_per_token", x.bytes_per_token},
                              {"prompt_tps", x.prompt_tps},
                              {"decode_tps", x.decode_tps},
                              {"dnll_mean", x.dnll_mean},
                              {"dnll_stderr", x.dnll_stderr},
                              {"kl_mean", x.kl_mean},
                              {"kl_stderr", x.kl_stderr},
                              {"top1_agreement", x.top1_agreement},
                              {"native_top1_kept", x.native_top1_kept}};
        add_ppl_json(row, x);
        rows.push_back(std::move(row));
    }
    j["summary"] = sweep_summary(j);
    return j;
}

namespace {

std::string millions(double v) {
    return fmt::format("{:.2f} M", v / 1e6);
}

}  // namespace

std::string sweep_table(const nlohmann::json& s) {
    const int n = s.value("n_expert", 0);
    std::string out = fmt::format("{:>9} {:>12} {:>11} {:>10} {:>10} {:>20} {:>18} {:>8} {:>10}\n",
                                  "k", "active/tok", "bytes/tok", "prompt t/s", "decode t/s",
                                  "PPL +/- se", "KL vs native", "top-1", "top-1 exp");
    for (const auto& x : s.at("rows")) {
        const std::string k =
            fmt::format("{} of {}{}", x.value("k", 0), n, x.value("native", false) ? "*" : "");
        out += fmt::format(
            "{:>9} {:>12} {:>11} {:>10.1f} {:>10.1f} {:>20} {:>18} {:>7.2f}% {:>9.2f}%\n", k,
            millions(x.value("active_params", 0.0)),
            millions(x.value("bytes_per_token", 0.0)) + "B", x.value("prompt_tps", 0.0),
            x.value("decode_tps", 0.0),
            fmt::format("{:.4f} +/- {:.4f}", x.value("ppl", 0.0), x.value("ppl_stderr", 0.0)),
            fmt::format("{:.5f} +/- {:.5f}", x.value("kl_mean", 0.0), x.value("kl_stderr", 0.0)),
            100.0 * x.value("top1_agreement", 0.0), 100.0 * x.value("native_top1_kept", 0.0));
    }
    out += fmt::format(
        "* native k. {} windows of {} tokens, {} predictions scored per k. KL(native || k) in "
        "nats; "
        "top-1: next-token argmax equals native's; top-1 exp: (MoE layer, token) whose native "
        "top-1 expert is still chosen.\n",
        s.value("n_windows", 0), s.value("n_ctx", 0), s.value("n_scored", 0));
    return out;
}

std::string sweep_summary(const nlohmann::json& s) {
    const int n = s.value("n_expert", 0);
    const nlohmann::json* nat = nullptr;
    for (const auto& x : s.at("rows"))
        if (x.value("native", false)) nat = &x;
    if (!nat) return "The sweep has no native row.";
    const double nd = nat->value("decode_tps", 0.0), np = nat->value("ppl", 0.0);
    std::string out;
    for (const auto& x : s.at("rows")) {
        if (x.value("native", false)) continue;
        const double d = x.value("decode_tps", 0.0), p = x.value("ppl", 0.0);
        if (d <= 0 || nd <= 0 || np <= 0) continue;
        const double speed = nd / d;  // > 1: slower than native
        const double dp = (p - np) / np * 100.0;
        const double dn = x.value("dnll_mean", 0.0), se = x.value("dnll_stderr", 0.0);
        const bool clear = std::abs(dn) > 2 * se;
        out += fmt::format(
            "{} of {} experts decodes {:.2f}x {} and has {:.1f}% {} perplexity ({:.3f} vs {:.3f}) "
            "than {} of {} (native); the per-token NLL difference is {:+.4f} +/- {:.4f} nats, {}. "
            "Its next-token choice agrees with native on {:.1f}% of tokens.\n",
            x.value("k", 0), n, speed >= 1 ? speed : 1 / speed, speed >= 1 ? "slower" : "faster",
            std::abs(dp), dp > 0 ? "worse" : "better", p, np, s.value("native_k", 0), n, dn, se,
            clear ? "more than twice its standard error"
                  : "within twice its standard error (not a "
                    "clear difference)",
            100.0 * x.value("top1_agreement", 0.0));
    }
    if (out.empty()) out = "Only the native k was measured.\n";
    return out;
}

}  // namespace moe
