// An independent float64 forward of the Hugging Face MoE classes with standard attention
// (MixtralForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM, OlmoeForCausalLM), written from
// their modeling code and read from model.safetensors, with k routed experts per token. Nothing
// here comes from the engine. Family differences: Qwen2-MoE's q/k/v biases and sigmoid-gated
// shared expert; Qwen3-MoE's per-head q/k RMSNorm; OLMoE's q/k RMSNorm over the whole
// projection; renormalised top-k weights for Mixtral (always) and where norm_topk_prob is set.
#pragma once

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "safetensors_f64.h"

namespace moe::test {

// y[rows] = W[rows, cols] x[cols]
inline std::vector<double> matvec(const std::vector<double>& W, const std::vector<double>& x,
                                  size_t rows) {
    std::vector<double> y(rows, 0.0);
    const size_t cols = x.size();
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c) y[r] += W[r * cols + c] * x[c];
    return y;
}

// RMSNorm of x in groups of w.size() (one group: the whole vector; several: per head).
inline std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& w,
                                   double eps) {
    std::vector<double> y(x.size());
    const size_t n = w.size();
    for (size_t g = 0; g < x.size(); g += n) {
        double s = 0;
        for (size_t i = 0; i < n; ++i) s += x[g + i] * x[g + i];
        const double r = 1.0 / std::sqrt(s / double(n) + eps);
        for (size_t i = 0; i < n; ++i) y[g + i] = x[g + i] * r * w[i];
    }
    return y;
}

inline void add_bias(std::vector<double>& y, const SafeTensors& w, const std::string& name) {
    if (!w.t.count(name)) return;
    const auto& b = w.at(name);
    for (size_t i = 0; i < y.size(); ++i) y[i] += b[i];
}

inline std::vector<double> swiglu_mlp(const SafeTensors& w, const std::string& p,
                                      const std::string& gate, const std::string& up,
                                      const std::string& down, const std::vector<double>& x,
                                      size_t F, size_t H) {
    const auto g = matvec(w.at(p + gate), x, F), u = matvec(w.at(p + up), x, F);
    std::vector<double> a(F);
    for (size_t i = 0; i < F; ++i) a[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    return matvec(w.at(p + down), a, H);
}

// Logits [T, vocab] of `family` on `tokens` with k experts per token.
inline std::vector<float> hf_moe_forward(const std::string& family, const SafeTensors& w,
                                         const nlohmann::json& cfg, const std::vector<int>& tokens,
                                         int k) {
    const bool mixtral = family == "mixtral";
    const int H = cfg["hidden_size"], nh = cfg["num_attention_heads"],
              nkv = cfg["num_key_value_heads"], L = cfg["num_hidden_layers"], V = cfg["vocab_size"];
    const int hd =
        cfg.value("head_dim", nlohmann::json()).is_number() ? int(cfg["head_dim"]) : H / nh;
    const int E = cfg.value("num_local_experts", cfg.value("num_experts", 0));
    const int F = cfg.value("moe_intermediate_size", nlohmann::json()).is_number()
                      ? int(cfg["moe_intermediate_size"])
                      : int(cfg["intermediate_size"]);
    const double eps = cfg["rms_norm_eps"], theta = cfg["rope_parameters"]["rope_theta"];
    const bool renorm = mixtral || cfg.value("norm_topk_prob", false);
    const std::string moe = mixtral ? "block_sparse_moe." : "mlp.";
    const int T = int(tokens.size());
    std::vector<std::vector<double>> h(static_cast<size_t>(T),
                                       std::vector<double>(static_cast<size_t>(H)));
    for (int t = 0; t < T; ++t)
        for (int i = 0; i < H; ++i)
            h[t][i] = w.at("model.embed_tokens.weight")[size_t(tokens[t] * H + i)];
    auto rope = [&](std::vector<double>& v, int heads, int pos) {  // rotate_half
        for (int hh = 0; hh < heads; ++hh)
            for (int i = 0; i < hd / 2; ++i) {
                const double f = pos * std::pow(theta, -2.0 * i / hd);
                double& a = v[size_t(hh * hd + i)];
                double& b = v[size_t(hh * hd + i + hd / 2)];
                const double x1 = a, x2 = b;
                a = x1 * std::cos(f) - x2 * std::sin(f);
                b = x2 * std::cos(f) + x1 * std::sin(f);
            }
    };
    for (int l = 0; l < L; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        std::vector<std::vector<double>> q(T), kk(T), vv(T);
        for (int t = 0; t < T; ++t) {
            const auto x = rmsnorm(h[t], w.at(p + "input_layernorm.weight"), eps);
            q[t] = matvec(w.at(p + "self_attn.q_proj.weight"), x, size_t(nh * hd));
            kk[t] = matvec(w.at(p + "self_attn.k_proj.weight"), x, size_t(nkv * hd));
            vv[t] = matvec(w.at(p + "self_attn.v_proj.weight"), x, size_t(nkv * hd));
            add_bias(q[t], w, p + "self_attn.q_proj.bias");
            add_bias(kk[t], w, p + "self_attn.k_proj.bias");
            add_bias(vv[t], w, p + "self_attn.v_proj.bias");
            if (w.t.count(p + "self_attn.q_norm.weight")) {  // per head or whole, by its size
                q[t] = rmsnorm(q[t], w.at(p + "self_attn.q_norm.weight"), eps);
                kk[t] = rmsnorm(kk[t], w.at(p + "self_attn.k_norm.weight"), eps);
            }
            rope(q[t], nh, t);
            rope(kk[t], nkv, t);
        }
        for (int t = 0; t < T; ++t) {
            std::vector<double> o(static_cast<size_t>(nh * hd), 0.0);
            for (int hh = 0; hh < nh; ++hh) {
                const int g = hh / (nh / nkv);
                std::vector<double> s(static_cast<size_t>(t + 1));
                double mx = -INFINITY;
                for (int u = 0; u <= t; ++u) {
                    double d = 0;
                    for (int i = 0; i < hd; ++i)
                        d += q[t][size_t(hh * hd + i)] * kk[u][size_t(g * hd + i)];
                    s[u] = d / std::sqrt(double(hd));
                    mx = std::max(mx, s[u]);
                }
                double z = 0;
                for (auto& x : s) z += (x = std::exp(x - mx));
                for (int u = 0; u <= t; ++u)
                    for (int i = 0; i < hd; ++i)
                        o[size_t(hh * hd + i)] += s[u] / z * vv[u][size_t(g * hd + i)];
            }
            const auto a = matvec(w.at(p + "self_attn.o_proj.weight"), o, size_t(H));
            for (int i = 0; i < H; ++i) h[t][i] += a[i];
        }
        for (int t = 0; t < T; ++t) {
            const auto x = rmsnorm(h[t], w.at(p + "post_attention_layernorm.weight"), eps);
            std::vector<double> pr = matvec(w.at(p + moe + "gate.weight"), x, size_t(E));
            const double mx = *std::max_element(pr.begin(), pr.end());
            double z = 0;
            for (auto& v : pr) z += (v = std::exp(v - mx));
            for (auto& v : pr) v /= z;
            std::vector<int> order(static_cast<size_t>(E));
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(),
                             [&](int a, int b) { return pr[a] > pr[b]; });
            double wsum = 0;
            for (int j = 0; j < k; ++j) wsum += pr[order[j]];
            if (!renorm) wsum = 1.0;
            std::vector<double> y(static_cast<size_t>(H), 0.0);
            for (int j = 0; j < k; ++j) {
                const std::string ep = p + moe + "experts." + std::to_string(order[j]) + ".";
                const auto d = mixtral ? swiglu_mlp(w, ep, "w1.weight", "w3.weight", "w2.weight", x,
                                                    size_t(F), size_t(H))
                                       : swiglu_mlp(w, ep, "gate_proj.weight", "up_proj.weight",
                                                    "down_proj.weight", x, size_t(F), size_t(H));
                for (int i = 0; i < H; ++i) y[i] += pr[order[j]] / wsum * d[i];
            }
            if (w.t.count(p + "mlp.shared_expert_gate.weight")) {  // Qwen2-MoE
                const int Fs = cfg["shared_expert_intermediate_size"];
                const auto s =
                    swiglu_mlp(w, p + "mlp.shared_expert.", "gate_proj.weight", "up_proj.weight",
                               "down_proj.weight", x, size_t(Fs), size_t(H));
                const double g = matvec(w.at(p + "mlp.shared_expert_gate.weight"), x, 1)[0];
                for (int i = 0; i < H; ++i) y[i] += s[i] / (1.0 + std::exp(-g));
            }
            for (int i = 0; i < H; ++i) h[t][i] += y[i];
        }
    }
    std::vector<float> logits;
    for (int t = 0; t < T; ++t) {
        const auto x = rmsnorm(h[t], w.at("model.norm.weight"), eps);
        const auto y = matvec(w.at("lm_head.weight"), x, size_t(V));
        logits.insert(logits.end(), y.begin(), y.end());
    }
    return logits;
}

}  // namespace moe::test
