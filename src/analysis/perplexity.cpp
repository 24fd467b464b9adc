#include "analysis/perplexity.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "runtime/session.h"

namespace moe {

namespace {

// Running sums of a per-token quantity: mean and standard error of the mean.
struct Moments {
    double sum = 0, sum2 = 0;
    int64_t n = 0;
    void add(double x) { sum += x, sum2 += x * x, ++n; }
    double mean() const { return n ? sum / double(n) : 0.0; }
    double stderr_of_mean() const {
        if (n < 2) return 0.0;
        const double var = sum2 / double(n) - mean() * mean();
        return var > 0 ? std::sqrt(var / double(n - 1)) : 0.0;
    }
};

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
    if (opt.n_ctx < 2) return make_error("context {} is too small (-c must be at least 2)", opt.n_ctx);
    p.score_from = opt.score_from < 0 ? opt.n_ctx / 2 : opt.score_from;
    if (p.score_from > opt.n_ctx - 2)
        return make_error("context {} is too small: no prediction left to score after position {}",
                          opt.n_ctx, p.score_from);
    if (opt.stride < 0 || opt.stride >= opt.n_ctx)
        return make_error("--stride {} must be in [1, {}] (below the context)", opt.stride,
                          opt.n_ctx - 1);
    if (n_tokens < opt.n_ctx)
        return make_error("the text has {} tokens, fewer than one window of {} (lower -c or give "
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

Result<PerplexityResult> evaluate_perplexity(const Model& model, const Model* ref,
                                             std::span<const int32_t> tokens,
                                             const PerplexityOptions& opt,
                                             const PerplexityCallback& progress) {
    MOE_TRY(const WindowPlan plan, plan_windows(int64_t(tokens.size()), opt));
    const int n_vocab = model.config.n_vocab;
    if (ref && ref->config.n_vocab != n_vocab)
        return make_error("the reference's vocabulary ({} tokens) differs from the model's ({})",
                          ref->config.n_vocab, n_vocab);
    for (int32_t t : tokens)
        if (t < 0 || t >= n_vocab)
            return make_error("token id {} is outside the vocabulary of {}", t, n_vocab);
    if (opt.bos >= n_vocab) return make_error("BOS id {} is outside the vocabulary", opt.bos);

    const int n_ctx = opt.n_ctx;
    SessionOptions so;
    so.n_ctx = n_ctx;
    so.n_batch = n_ctx;  // one forward pass per window: the router trace is [layer, token]
    so.n_threads = opt.n_threads;
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

    Moments nll, ref_nll, kl;
    std::vector<double> kls;
    int64_t top1_same = 0, b1_top1_same = 0, b1_rows = 0;
    std::vector<double> lp, lq;
    std::vector<int32_t> win(static_cast<size_t>(n_ctx));
    const int64_t step = opt.stride > 0 ? opt.stride : n_ctx;
    for (int w = 0; w < plan.n_windows; ++w) {
        const int64_t start = int64_t(w) * step;
        std::copy(tokens.begin() + start, tokens.begin() + start + n_ctx, win.begin());
        if (opt.bos >= 0) win[0] = opt.bos;
        const int lo = (w == 0 || opt.stride == 0) ? plan.score_from : n_ctx - 1 - opt.stride;

        sess.reset();
        RouterTrace trace;
        MOE_TRY(auto logits, sess.eval_tokens(win, true, 0, n_moe > 0 ? &trace : nullptr));
        auto row = [n_vocab](const std::vector<float>& v, int j) {
            return std::span<const float>(v.data() + size_t(j) * size_t(n_vocab), size_t(n_vocab));
        };
        for (int j = lo; j < n_ctx - 1; ++j) nll.add(token_nll(row(logits, j), win[size_t(j) + 1]));

        if (ref) {
            ref_sess->reset();
            RouterTrace rtrace;
            const bool want = r.routing_vs_ref.available;
            MOE_TRY(auto rlogits, ref_sess->eval_tokens(win, true, 0, want ? &rtrace : nullptr));
            for (int j = lo; j < n_ctx - 1; ++j) {
                ref_nll.add(token_nll(row(rlogits, j), win[size_t(j) + 1]));
                log_softmax(row(rlogits, j), lp);
                log_softmax(row(logits, j), lq);
                double d = 0;
                for (int v = 0; v < n_vocab; ++v) d += std::exp(lp[size_t(v)]) * (lp[size_t(v)] - lq[size_t(v)]);
                d = std::max(0.0, d);  // rounding can make an exact zero slightly negative
                kl.add(d);
                kls.push_back(d);
                top1_same += argmax(row(rlogits, j)) == argmax(row(logits, j));
            }
            if (want) {
                for (int l = 0; l < n_moe; ++l)
                    for (int t = 0; t < n_ctx; ++t) {
                        const size_t off = (size_t(l) * size_t(n_ctx) + size_t(t)) * size_t(k);
                        r.routing_vs_ref.compared++;
                        r.routing_vs_ref.differing +=
                            !same_experts(&trace.selected[off], &rtrace.selected[off], k);
                    }
            }
        }

        if (opt.batch1_windows < 0 || w < opt.batch1_windows) {
            // The same window token by token: decode-shaped passes through the same cache.
            sess.reset();
            r.batch1_windows++;
            for (int t = 0; t < n_ctx; ++t) {
                RouterTrace t1;
                MOE_TRY(auto l1, sess.eval_tokens(std::span<const int32_t>(&win[size_t(t)], 1),
                                                  false, 0, n_moe > 0 ? &t1 : nullptr));
                const auto batched = row(logits, t);
                for (int v = 0; v < n_vocab; ++v)
                    r.batch1_max_abs_logit_diff =
                        std::max(r.batch1_max_abs_logit_diff,
                                 std::abs(double(l1[size_t(v)]) - double(batched[size_t(v)])));
                b1_top1_same += argmax(l1) == argmax(batched);
                b1_rows++;
                if (n_moe > 0)
                    for (int l = 0; l < n_moe; ++l) {
                        const size_t off = (size_t(l) * size_t(n_ctx) + size_t(t)) * size_t(k);
                        r.routing_batch1.compared++;
                        r.routing_batch1.differing +=
                            !same_experts(&trace.selected[off], &t1.selected[size_t(l) * size_t(k)], k);
                    }
            }
        }

        r.window_ppl.push_back(std::exp(nll.mean()));
        if (progress) progress({w + 1, plan.n_windows, std::exp(nll.mean()), nll.n});
    }
    if (r.batch1_windows == 0 && n_moe > 0) {
        r.routing_batch1.available = false;
        r.routing_batch1.why_not = "no window was evaluated token by token";
    }

    r.n_scored = nll.n;
    r.nll = nll.mean();
    r.ppl = std::exp(r.nll);
    r.ppl_stderr = nll.stderr_of_mean() * r.ppl;
    if (ref) {
        r.ref_ppl = std::exp(ref_nll.mean());
        r.ref_ppl_stderr = ref_nll.stderr_of_mean() * r.ref_ppl;
        r.kl_mean = kl.mean();
        r.kl_stderr = kl.stderr_of_mean();
        std::sort(kls.begin(), kls.end());
        if (!kls.empty()) {
            const size_t i99 = size_t(std::ceil(0.99 * double(kls.size()))) - 1;
            r.kl_p99 = kls[std::min(i99, kls.size() - 1)];
            r.kl_max = kls.back();
        }
        r.top1_agreement = kl.n ? double(top1_same) / double(kl.n) : 0.0;
    }
    r.batch1_top1_agreement = b1_rows ? double(b1_top1_same) / double(b1_rows) : 0.0;
    return r;
}

}  // namespace moe
