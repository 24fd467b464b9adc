// The coarse ops of kernels/ops.h: element-wise ops against formulas evaluated in double here,
// the CPU splits of attention, per-head products and MoE experts against kernels/ref.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <complex>
#include <numeric>
#include <random>
#include <vector>

#include "fixtures.h"
#include "kernels/ops.h"
#include "kernels/ref/ops_ref.h"
#include "kernels/ref/quantize.h"

namespace moe {
namespace {

using test::max_rel;
using test::rms_rel;

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
    std::normal_distribution<float> d(0.0f, sd);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// |got - want| within `ulps` f32 roundings of want (plus a floor for values near 0).
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double ulps) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], want[i], ulps * FLT_EPSILON * (std::abs(want[i]) + 1e-6)) << "at " << i;
}

TEST(Ops, RmsNormMatchesDoubleFormula) {
    std::mt19937 rng(1);
    const int64_t T = 3, n = 37;
    const auto x = randn(size_t(T * n), rng, 3.0f), w = randn(size_t(n), rng);
    for (const float* wp : {w.data(), static_cast<const float*>(nullptr)}) {
        std::vector<float> y(x.size());
        ops::rms_norm(x.data(), T, n, wp, 1e-5f, y.data());
        std::vector<double> want(x.size());
        for (int64_t t = 0; t < T; ++t) {
            double ss = 0;
            for (int64_t i = 0; i < n; ++i)
                ss += double(x[size_t(t * n + i)]) * x[size_t(t * n + i)];
            const double r = 1.0 / std::sqrt(ss / n + 1e-5);
            for (int64_t i = 0; i < n; ++i)
                want[size_t(t * n + i)] = x[size_t(t * n + i)] * r * (wp ? wp[i] : 1.0);
        }
        expect_close(y, want, 4);  // a scale rounded to f32, then two f32 products
        std::vector<float> in_place = x;
        ops::rms_norm(in_place.data(), T, n, wp, 1e-5f, in_place.data());
        EXPECT_EQ(in_place, y);
    }
}

TEST(Ops, SoftmaxMatchesDoubleFormulaWithoutOverflow) {
    std::vector<float> x = {1000.0f, 999.0f, 990.0f, -5.0f, 1000.0f};  // exp(1000) overflows f32
    std::vector<double> want(x.size());
    double sum = 0;
    for (size_t i = 0; i < x.size(); ++i) sum += want[i] = std::exp(double(x[i]) - 1000.0);
    for (double& v : want) v /= sum;
    ops::softmax(x.data(), int64_t(x.size()));
    expect_close(x, want, 8);
}

TEST(Ops, SigmoidAndSwigluMatchDoubleFormulas) {
    std::mt19937 rng(2);
    const auto g = randn(64, rng, 4.0f), u = randn(64, rng, 4.0f);
    std::vector<float> s = g, out(64), clamped(64);
    ops::sigmoid(s.data(), 64);
    ops::swiglu(g.data(), u.data(), out.data(), 64);
    const float alpha = 1.702f, limit = 3.0f;  // |g|, |u| reach 12: both clamps bite
    ops::swiglu_clamped(g.data(), u.data(), clamped.data(), 64, alpha, limit);
    std::vector<double> ws(64), wo(64), wc(64);
    for (size_t i = 0; i < 64; ++i) {
        const double gi = g[i], ui = u[i];
        ws[i] = 1.0 / (1.0 + std::exp(-gi));
        wo[i] = gi / (1.0 + std::exp(-gi)) * ui;
        const double gc = std::min(gi, double(limit)), uc = std::clamp(ui, -3.0, 3.0);
        wc[i] = (uc + 1.0) * gc / (1.0 + std::exp(-double(alpha) * gc));
    }
    expect_close(s, ws, 4);
    expect_close(out, wo, 8);
    expect_close(clamped, wc, 8);
}

TEST(Ops, AddsAreExact) {
    std::vector<float> y = {1, 2, 3, 4, 5, 6}, x = {0.5f, 1, 1.5f, 2, 2.5f, 3};
    ops::add(y.data(), x.data(), 6);
    EXPECT_EQ(y, (std::vector<float>{1.5f, 3, 4.5f, 6, 7.5f, 9}));
    const float b[3] = {10, 20, 30};
    ops::add_bias(y.data(), 2, 3, b);
    EXPECT_EQ(y, (std::vector<float>{11.5f, 23, 34.5f, 16, 27.5f, 39}));
    ops::add_bias(y.data(), 2, 3, nullptr);
    EXPECT_EQ(y, (std::vector<float>{11.5f, 23, 34.5f, 16, 27.5f, 39}));
    const float s[2] = {2, -1};
    ops::add_scaled_rows(y.data(), x.data(), s, 2, 3);
    EXPECT_EQ(y, (std::vector<float>{12.5f, 25, 37.5f, 14, 25, 36}));
}

// RoPE as complex rotation: the pair (a, b) of frequency i becomes (a + ib) * attn * e^(i pos f).
TEST(Ops, RopeRotatesPairsByPositionTimesFrequency) {
    std::mt19937 rng(3);
    const int n_heads = 2, head = 10, n_dims = 8;      // the last 2 dims of a head are not rotated
    const int64_t T = 3, stride = n_heads * head + 4;  // rows padded: the padding stays as is
    const int32_t pos[T] = {0, 7, 4000};
    const std::vector<double> inv_freq = {1.0, 0.3, 0.01, 1e-4};
    for (bool neox : {false, true}) {
        const ops::RopeParams p{n_dims, neox, 1.25, inv_freq.data()};
        const auto x = randn(size_t(T * stride), rng);
        std::vector<float> y = x;
        ops::rope(p, y.data(), T, stride, n_heads, head, pos);
        std::vector<double> want(x.begin(), x.end());
        for (int64_t t = 0; t < T; ++t)
            for (int h = 0; h < n_heads; ++h)
                for (int i = 0; i < n_dims / 2; ++i) {
                    const int64_t o = t * stride + h * head;
                    const int64_t a = o + (neox ? i : 2 * i),
                                  b = o + (neox ? i + n_dims / 2 : 2 * i + 1);
                    const std::complex<double> r =
                        std::complex<double>(x[size_t(a)], x[size_t(b)]) *
                        std::polar(1.25, double(pos[t]) * inv_freq[size_t(i)]);
                    want[size_t(a)] = r.real(), want[size_t(b)] = r.imag();
                    // f32 cos and sin times the pair: an error relative to the pair's size
                    const double tol = 8 * FLT_EPSILON * std::abs(r) + 1e-7;
                    EXPECT_NEAR(y[size_t(a)], r.real(), tol) << t << " " << h << " " << i;
                    EXPECT_NEAR(y[size_t(b)], r.imag(), tol) << t << " " << h << " " << i;
                }
        for (size_t i = 0; i < x.size(); ++i)  // the unrotated dims and the padding
            if (want[i] == x[i]) EXPECT_EQ(y[i], x[i]) << i;
    }
}

// Paged KV for tests: n_seq sequences of n_pos positions each, pages handed out in a scrambled
// order so that a wrong page lookup reads another sequence's rows.
struct TestKv {
    int page_tokens = 4;
    std::vector<float> k, v;
    std::vector<std::vector<int32_t>> tables;
    ops::KvPages pages;
    TestKv(int n_seq, int n_pos, int64_t k_row, int64_t v_row, std::mt19937& rng) {
        const int per_seq = (n_pos + page_tokens - 1) / page_tokens, n_pages = n_seq * per_seq;
        std::vector<int32_t> ids(static_cast<size_t>(n_pages));
        std::iota(ids.begin(), ids.end(), 0);
        std::shuffle(ids.begin(), ids.end(), rng);
        for (int s = 0; s < n_seq; ++s)
            tables.emplace_back(ids.begin() + s * per_seq, ids.begin() + (s + 1) * per_seq);
        k = randn(size_t(n_pages * page_tokens * k_row), rng);
        v = randn(size_t(n_pages * page_tokens * v_row), rng);
        pages = {k.data(), v.data(), k_row, v_row, page_tokens, tables};
    }
};

TEST(Ops, ReferenceAttentionOfOnePositionIsItsValue) {
    std::mt19937 rng(4);
    TestKv kv(1, 1, 8, 8, rng);
    const auto q = randn(8, rng);
    ops::AttentionParams p;
    p.n_head = 1, p.n_head_kv = 1, p.k_dim = 8, p.v_dim = 8, p.scale = 0.5f;
    const int32_t pos = 0, seq = 0;
    std::vector<float> out(8);
    ref::attention(p, q.data(), 1, &pos, &seq, kv.pages, out.data());
    for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(out[size_t(i)], kv.v[size_t(i)]);
    // A sink takes 1 / (1 + e^(score - sink)) of the mass away from the value.
    double s = 0;
    for (int i = 0; i < 8; ++i) s += double(q[size_t(i)]) * kv.k[size_t(i)] * 0.5;
    const float sink = 0.3f;
    p.sinks = &sink;
    ref::attention(p, q.data(), 1, &pos, &seq, kv.pages, out.data());
    for (int i = 0; i < 8; ++i)
        EXPECT_NEAR(out[size_t(i)], kv.v[size_t(i)] / (1 + std::exp(sink - s)), 1e-6);
}

// The CPU attention against the reference: grouped heads, two interleaved sequences, and each
// variant parameter (sliding window, sinks, soft cap, the MLA split with values inside the keys).
TEST(Ops, AttentionMatchesReference) {
    std::mt19937 rng(5);
    ThreadPool pool(3);
    struct Case {
        const char* name;
        int n_head_kv, k_dim, k_split, v_dim, window;
        bool sinks;
        float cap;
    };
    const Case cases[] = {{"gqa", 2, 16, 0, 16, 0, false, 0},
                          {"window", 2, 16, 0, 16, 3, false, 0},
                          {"sinks", 2, 16, 0, 16, 5, true, 0},
                          {"softcap", 4, 16, 0, 16, 0, false, 2},
                          {"mla", 1, 40, 32, 32, 0, false, 0},
                          // Widths past the 512-bit loops' 16 and 64 elements, with tails.
                          {"wide", 2, 72, 0, 88, 0, true, 0},
                          {"mla-wide", 1, 88, 64, 64, 4, false, 0}};
    const int n_head = 4;
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        const bool mla = c.k_split > 0;  // values are the first v_dim of a key row
        TestKv kv(2, 21, int64_t(c.n_head_kv) * c.k_dim, mla ? 0 : int64_t(c.n_head_kv) * c.v_dim,
                  rng);
        if (mla) kv.pages.v = kv.pages.k, kv.pages.v_row = kv.pages.k_row;
        std::vector<int32_t> pos, seq;
        for (int i = 0; i < 21; ++i) pos.push_back(i), seq.push_back(0);
        for (int i = 0; i < 9; ++i) pos.push_back(i), seq.push_back(1);
        const int64_t T = int64_t(pos.size());
        const auto sinks = randn(size_t(n_head), rng);
        const auto q = randn(size_t(T * n_head * c.k_dim), rng);
        ops::AttentionParams p;
        p.n_head = n_head, p.n_head_kv = c.n_head_kv, p.k_dim = c.k_dim, p.k_split = c.k_split;
        p.v_dim = c.v_dim, p.scale = 0.7f, p.sliding_window = c.window, p.soft_cap = c.cap;
        p.sinks = c.sinks ? sinks.data() : nullptr;
        std::vector<float> got(size_t(T * n_head * c.v_dim)), want(got.size());
        ops::attention(p, q.data(), T, pos.data(), seq.data(), kv.pages, got.data(), pool);
        ref::attention(p, q.data(), T, pos.data(), seq.data(), kv.pages, want.data());
        // f32 sums over k_dim products and up to 21 positions.
        EXPECT_LT(max_rel(got, want), 64 * FLT_EPSILON);
    }
}

// A sliding-window layer's decode reads only its last `window` positions (gpt-oss: 128 of the
// whole context): the keys and values before them are NaN here, so any read of one would turn
// the output into NaN. The result equals the reference on the intact cache.
TEST(Ops, SlidingWindowDecodeReadsOnlyTheWindow) {
    std::mt19937 rng(8);
    ThreadPool pool(2);
    const int n_pos = 41, window = 8, n_head = 4, n_head_kv = 2, dim = 16;
    TestKv kv(1, n_pos, n_head_kv * dim, n_head_kv * dim, rng);
    const auto sinks = randn(size_t(n_head), rng);
    const auto q = randn(size_t(n_head * dim), rng);
    ops::AttentionParams p;
    p.n_head = n_head, p.n_head_kv = n_head_kv, p.k_dim = dim, p.v_dim = dim, p.scale = 0.25f;
    p.sliding_window = window, p.sinks = sinks.data();
    const int32_t pos = n_pos - 1, seq = 0;
    std::vector<float> got(size_t(n_head * dim)), want(got.size());
    ref::attention(p, q.data(), 1, &pos, &seq, kv.pages, want.data());
    for (int32_t old = 0; old <= pos - window; ++old) {
        const int64_t slot = kv.pages.slot(0, old);
        std::fill_n(kv.k.data() + slot * kv.pages.k_row, kv.pages.k_row, NAN);
        std::fill_n(kv.v.data() + slot * kv.pages.v_row, kv.pages.v_row, NAN);
    }
    ops::attention(p, q.data(), 1, &pos, &seq, kv.pages, got.data(), pool);
    int non_finite = 0;  // max_rel's std::max would pass over a NaN
    for (float v : got) non_finite += !std::isfinite(v);
    EXPECT_EQ(non_finite, 0);
    EXPECT_LT(max_rel(got, want), 64 * FLT_EPSILON);
}

// w [n, rows, K] of type t from random f32 values (quantized by the reference quantizer).
std::vector<uint8_t> make_weight(DType t, int64_t n, int64_t rows, int64_t K, std::mt19937& rng,
                                 TensorView& view) {
    const auto f = randn(size_t(n * rows * K), rng, 0.2f);
    const int64_t rb = dtype_row_bytes(t, K);
    std::vector<uint8_t> w(size_t(n * rows * rb));
    for (int64_t r = 0; r < n * rows; ++r) {
        if (t == DType::F32)
            std::copy_n(f.data() + r * K, K, reinterpret_cast<float*>(w.data() + r * rb));
        else
            ref::quantize_row_fn(t)(f.data() + r * K, w.data() + r * rb, K);
    }
    view.dtype = t;
    view.shape = n > 1 ? Shape{n, rows, K} : Shape{rows, K};
    view.data = w.data();
    return w;
}

// Q8 activations: each element within half a level of its block (level = absmax / 127, about
// 2 sigma / 127 for 32 Gaussian values), an rms error of ~0.5% per quantized input; the bound
// allows twice that per quantization stage. f32 weights: f32 rounding only.
double tolerance(DType t, int stages) {
    return t == DType::F32 ? 1e-5 : 1e-2 * stages;
}

TEST(Ops, PerHeadMatmulMatchesReference) {
    std::mt19937 rng(6);
    ThreadPool pool(3);
    const int nh = 3;
    const int64_t T = 5, N = 24, K = 64, x_head = K + 4, x_tok = nh * x_head + 8;
    for (DType t : {DType::F32, DType::Q8_0}) {
        TensorView w;
        const auto mem = make_weight(t, nh, N, K, rng, w);
        const auto x = randn(size_t(T * x_tok), rng);
        std::vector<float> got(size_t(T * nh * N)), want(got.size());
        ops::per_head_matmul(x.data(), T, nh, x_tok, x_head, w, got.data(), pool);
        ref::per_head_matmul(x.data(), T, nh, x_tok, x_head, w, want.data());
        EXPECT_LT(rms_rel(got, want), tolerance(t, 1)) << dtype_name(t);
    }
}

// Routed experts: 6 experts, top-2, 20 tokens; biases and the clamped activation; one expert of
// another type than the rest (its own activation packing).
TEST(Ops, MoeExpertsMatchReference) {
    std::mt19937 rng(7);
    ThreadPool pool(3);
    const int n_exp = 6, k = 2;
    const int64_t T = 20, n_embd = 64, n_ff = 96;
    for (DType t : {DType::F32, DType::Q8_0})
        for (bool variant : {false, true}) {
            SCOPED_TRACE(std::string(dtype_name(t)) + (variant ? " biased, clamped" : ""));
            std::vector<std::vector<uint8_t>> mem;
            std::vector<ops::ExpertWeights> ex(n_exp);
            const auto biases = randn(size_t(n_exp * (2 * n_ff + n_embd)), rng, 0.1f);
            for (int e = 0; e < n_exp; ++e) {
                const DType te = e == 4 && t == DType::Q8_0 ? DType::F32 : t;
                mem.push_back(make_weight(te, 1, n_ff, n_embd, rng, ex[size_t(e)].gate));
                mem.push_back(make_weight(te, 1, n_ff, n_embd, rng, ex[size_t(e)].up));
                mem.push_back(make_weight(te, 1, n_embd, n_ff, rng, ex[size_t(e)].down));
                if (variant) {
                    const float* b = biases.data() + e * (2 * n_ff + n_embd);
                    ex[size_t(e)].gate_b = b, ex[size_t(e)].up_b = b + n_ff;
                    ex[size_t(e)].down_b = b + 2 * n_ff;
                }
            }
            ops::GluParams act;
            act.clamped = variant, act.limit = 0.5f;
            std::vector<int32_t> ids(size_t(T * k));
            std::vector<float> wts(size_t(T * k));
            std::uniform_real_distribution<float> uw(0.1f, 1.0f);
            for (int64_t i = 0; i < T; ++i) {
                ids[size_t(i * k)] = int32_t(rng() % n_exp);
                ids[size_t(i * k + 1)] =
                    int32_t((ids[size_t(i * k)] + 1 + rng() % (n_exp - 1)) % n_exp);
                wts[size_t(i * k)] = uw(rng), wts[size_t(i * k + 1)] = uw(rng);
            }
            const auto x = randn(size_t(T * n_embd), rng);
            std::vector<float> got(size_t(T * n_embd), 123.0f), want(got.size());
            ops::moe_experts(x.data(), T, k, ids.data(), wts.data(), ex, act, got.data(), pool);
            ref::moe_experts(x.data(), T, k, ids.data(), wts.data(), ex, act, want.data());
            EXPECT_LT(rms_rel(got, want), tolerance(t, 2));  // x, then the hidden rows
        }
}

}  // namespace
}  // namespace moe
