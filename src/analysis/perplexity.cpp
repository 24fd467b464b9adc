#include "analysis/perplexity.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "analysis/moments.h"
#include "runtime/session.h"

namespace moe {

namespace {

int argmax(std::span<const float> v) {
    return int(std::max_element(v.begin(), v.end()) - v.begin());
}

// Whether the selected experts of (layer l, token t) agree as sets.
bool same_experts(const int32_t* a, const int32_t* b, int k) {
    std::array<int32_t, 64> x{}, y{};
    if (k > 64) return std::equal(a, a + k, b);
    std::copy(a, a + k, x.begin());
    std::copy(b, b + k, y.begin());
    std::sort(x.begin(), x.begin() + k);
    std::sort(y.begin(), y.begin() + k);
    return std::equal(x.begin(), x.begin() + k, y.begin());
}

std::string routing_incompatibility(const ModelConfig& a, const ModelConfig& b) {
    if (a.n_moe_layers() == 0) return "the model has no MoE layers";
    if (b.n_moe_layers() == 0) return "the reference has no MoE layers";
    if (a.is_moe != b.is_moe || a.moe.n_expert != b.moe.n_expert ||
        a.moe.n_expert_used != b.moe.n_expert_used)
        return "the models' MoE layers or expert counts differ";
    return "";
}

}  // namespace

double token_nll(std::span<const float> logits, int32_t target) {
    double mx = -INFINITY;
    for (float x : logits) mx = std::max(mx, double(x));
    double s = 0;
    for (float x : logits) s += std::exp(double(x) - mx);
    return mx + std::log(s) - double(logits[size_t(target)]);
}

void log_softmax(std::span<const float> logits, std::vector<double>& out) {
    out.resize(logits.size());
    double mx = -INFINITY;
    for (float x : logits) mx = std::max(mx, double(x));
    double s = 0;
    for (float x : logits) s += std::exp(double(x) - mx);
    const double lse = mx + std::log(s);
    for (size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - lse;
}

Result<WindowPlan> plan_windows(int64_t n_tokens, const PerplexityOptions& opt) {
    WindowPlan p;
    if (opt.n_ctx < 2)
        return make_error("context {} is too small (-c must be at least 2)", opt.n_ctx);
    p.score_from = opt.score_from < 0 ? opt.n_ctx / 2 : opt.score_from;
    if (p.score_from > opt.n_ctx - 2)
        return make_error("context {} is too small: no prediction left to score after position {}",
                          opt.n_ctx, p.score_from);
    if (opt.stride < 0 || opt.stride >= opt.n_ctx)
        return make_error("--stride {} must be in [1, {}] (below the context)", opt.stride,
                          opt.n_ctx - 1);
    if (n_tokens < opt.n_ctx)
        return make_error(
            "the text has {} tokens, fewer than one window of {} (lower -c or give "
            "more text)",
            n_tokens, opt.n_ctx);
    const int64_t step = opt.stride > 0 ? opt.stride : opt.n_ctx;
    int64_t n = (n_tokens - opt.n_ctx) / step + 1;
    if (opt.max_windows > 0) n = std::min<int64_t>(n, opt.max_windows);
    p.n_windows = int(n);
    const int64_t first = opt.n_ctx - 1 - p.score_from;
    p.n_scored = opt.stride > 0 ? first + (n - 1) * opt.stride : first * n;
    return p;
}

namespace {

Result<void> check_inputs(const Model& model, const Model* ref, std::span<const int32_t> tokens,
                          const PerplexityOptions& opt) {
    const int n_vocab = model.config.n_vocab;
    if (ref && ref->config.n_vocab != n_vocab)
        return make_error("the reference's vocabulary ({} tokens) differs from the model's ({})",
                          ref->config.n_vocab, n_vocab);
    for (int32_t t : tokens)
        if (t < 0 || t >= n_vocab)
            return make_error("token id {} is outside the vocabulary of {}", t, n_vocab);
    if (opt.bos >= n_vocab) return make_error("BOS id {} is outside the vocabulary", opt.bos);
    return {};
}

// Row j of logits [T, n_vocab].
std::span<const float> logit_row(const std::vector<float>& v, int j, int n_vocab) {
    return std::span<const float>(v.data() + size_t(j) * size_t(n_vocab), size_t(n_vocab));
}

// Counts (MoE layer, token) pairs whose expert sets differ; a's trace has a_tokens rows per
// layer starting at token a_t0, b's b_tokens rows starting at b_t0.
void count_routing(const RouterTrace& a, int a_tokens, int a_t0, const RouterTrace& b, int b_tokens,
                   int b_t0, int n_tokens, int n_moe, int k, RoutingDiff& d) {
    for (int l = 0; l < n_moe; ++l)
        for (int t = 0; t < n_tokens; ++t) {
            const size_t oa = (size_t(l) * size_t(a_tokens) + size_t(a_t0 + t)) * size_t(k);
            const size_t ob = (size_t(l) * size_t(b_tokens) + size_t(b_t0 + t)) * size_t(k);
            d.compared++;
            d.differing += !same_experts(&a.selected[oa], &b.selected[ob], k);
        }
}

// What the windows add up to, turned into a PerplexityResult at the end.
struct Totals {
    Moments nll, ref_nll, kl;
    std::vector<double> kls;
    int64_t top1_same = 0, b1_top1_same = 0, b1_rows = 0;
};

// One window: the model's logits [n_ctx, n_vocab] and routing.
struct WindowEval {
    std::vector<float> logits;
    RouterTrace trace;
};

// The reference on the same window: its NLL, KL(ref || model) and argmax agreement on the scored
// rows [lo, n_ctx - 1), and the routing against the model's.
Result<void> compare_with_ref(Session& ref_sess, const std::vector<int32_t>& win, int lo,
                              const WindowEval& e, int n_vocab, int n_moe, int k, Totals& tot,
                              PerplexityResult& r) {
    const int n_ctx = int(win.size());
    ref_sess.reset();
    RouterTrace rtrace;
    const bool want = r.routing_vs_ref.available;
    MOE_TRY(auto rlogits, ref_sess.eval_tokens(win, true, 0, want ? &rtrace : nullptr));
    std::vector<double> lp, lq;
    for (int j = lo; j < n_ctx - 1; ++j) {
        const auto rrow = logit_row(rlogits, j, n_vocab), row = logit_row(e.logits, j, n_vocab);
        tot.ref_nll.add(token_nll(rrow, win[size_t(j) + 1]));
        log_softmax(rrow, lp);
        log_softmax(row, lq);
        double d = 0;
        for (int v = 0; v < n_vocab; ++v)
            d += std::exp(lp[size_t(v)]) * (lp[size_t(v)] - lq[size_t(v)]);
        d = std::max(0.0, d);  // rounding can make an exact zero slightly negative
        tot.kl.add(d);
        tot.kls.push_back(d);
        tot.top1_same += argmax(rrow) == argmax(row);
    }
    if (want) count_routing(e.trace, n_ctx, 0, rtrace, n_ctx, 0, n_ctx, n_moe, k, r.routing_vs_ref);
    return {};
}

// The same window token by token: decode-shaped passes through the same cache, against the
// batched logits and routing.
Result<void> compare_batch1(Session& sess, const std::vector<int32_t>& win, const WindowEval& e,
                            int n_vocab, int n_moe, int k, Totals& tot, PerplexityResult& r) {
    const int n_ctx = int(win.size());
    sess.reset();
    r.batch1_windows++;
    for (int t = 0; t < n_ctx; ++t) {
        RouterTrace t1;
        MOE_TRY(auto l1, sess.eval_tokens(std::span<const int32_t>(&win[size_t(t)], 1), false, 0,
                                          n_moe > 0 ? &t1 : nullptr));
        const auto batched = logit_row(e.logits, t, n_vocab);
        for (int v = 0; v < n_vocab; ++v)
            r.batch1_max_abs_logit_diff =
                std::max(r.batch1_max_abs_logit_diff,
                         std::abs(double(l1[size_t(v)]) - double(batched[size_t(v)])));
        tot.b1_top1_same += argmax(l1) == argmax(batched);
        tot.b1_rows++;
        if (n_moe > 0) count_routing(e.trace, n_ctx, t, t1, 1, 0, 1, n_moe, k, r.routing_batch1);
    }
    return {};
}

void finish(const Totals& tot, bool has_ref, PerplexityResult& r) {
    static_cast<PplFigure&>(r) = ppl_figure(tot.nll);
    if (has_ref) {
        const PplFigure ref = ppl_figure(tot.ref_nll);
        r.ref_ppl = ref.ppl;
        r.ref_ppl_stderr = ref.ppl_stderr;
        r.kl_mean = tot.kl.mean();
        r.kl_stderr = tot.kl.stderr_of_mean();
        std::vector<double> kls = tot.kls;
        std::sort(kls.begin(), kls.end());
        if (!kls.empty()) {
            const size_t i99 = size_t(std::ceil(0.99 * double(kls.size()))) - 1;
            r.kl_p99 = kls[std::min(i99, kls.size() - 1)];
            r.kl_max = kls.back();
        }
        r.top1_agreement = tot.kl.n ? double(tot.top1_same) / double(tot.kl.n) : 0.0;
    }
    r.batch1_top1_agreement = tot.b1_rows ? double(tot.b1_top1_same) / double(tot.b1_rows) : 0.0;
}

}  // namespace

Result<PerplexityResult> evaluate_perplexity(const Model& model, const Model* ref,
                                             std::span<const int32_t> tokens,
                                             const PerplexityOptions& opt,
                                             const PerplexityCallback& progress) {
    MOE_TRY(const WindowPlan plan, plan_windows(int64_t(tokens.size()), opt));
    MOE_TRY_VOID(check_inputs(model, ref, tokens, opt));
    const int n_vocab = model.config.n_vocab;
    const int n_ctx = opt.n_ctx;
    SessionOptions so;
    so.n_ctx = n_ctx;
    so.n_batch = n_ctx;  // one forward pass per window: the router trace is [layer, token]
    so.n_threads = opt.n_threads;
    so.kv_types = opt.kv_types;
    MOE_TRY(const std::unique_ptr<Session> session, Session::create(model, so));
    Session& sess = *session;
    std::unique_ptr<Session> ref_sess;
    if (ref) {
        MOE_TRY(ref_sess, Session::create(*ref, so));
    }

    PerplexityResult r;
    r.n_tokens = int64_t(tokens.size());
    r.n_windows = plan.n_windows;
    r.has_ref = ref != nullptr;
    const int n_moe = model.config.n_moe_layers();
    const int k = model.config.moe.n_expert_used;
    if (ref) {
        r.routing_vs_ref.why_not = routing_incompatibility(model.config, ref->config);
        r.routing_vs_ref.available = r.routing_vs_ref.why_not.empty();
    }
    r.routing_batch1.available = n_moe > 0;
    if (n_moe == 0) r.routing_batch1.why_not = "the model has no MoE layers";

    Totals tot;
    std::vector<int32_t> win(static_cast<size_t>(n_ctx));
    const int64_t step = opt.stride > 0 ? opt.stride : n_ctx;
    for (int w = 0; w < plan.n_windows; ++w) {
        const int64_t start = int64_t(w) * step;
        std::copy(tokens.begin() + start, tokens.begin() + start + n_ctx, win.begin());
        if (opt.bos >= 0) win[0] = opt.bos;
        const int lo = (w == 0 || opt.stride == 0) ? plan.score_from : n_ctx - 1 - opt.stride;

        sess.reset();
        WindowEval e;
        MOE_TRY(e.logits, sess.eval_tokens(win, true, 0, n_moe > 0 ? &e.trace : nullptr));
        for (int j = lo; j < n_ctx - 1; ++j)
            tot.nll.add(token_nll(logit_row(e.logits, j, n_vocab), win[size_t(j) + 1]));
        if (ref) MOE_TRY_VOID(compare_with_ref(*ref_sess, win, lo, e, n_vocab, n_moe, k, tot, r));
        if (opt.batch1_windows < 0 || w < opt.batch1_windows)
            MOE_TRY_VOID(compare_batch1(sess, win, e, n_vocab, n_moe, k, tot, r));

        r.window_ppl.push_back(std::exp(tot.nll.mean()));
        if (progress) progress({w + 1, plan.n_windows, std::exp(tot.nll.mean()), tot.nll.n});
    }
    if (r.batch1_windows == 0 && n_moe > 0) {
        r.routing_batch1.available = false;
        r.routing_batch1.why_not = "no window was evaluated token by token";
    }
    finish(tot, ref != nullptr, r);
    return r;
}

}  // namespace moe
