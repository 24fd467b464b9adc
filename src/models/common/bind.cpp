#include "models/common/bind.h"

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/ops.h"

namespace moe {

constexpr int64_t kMaxDim = 1 << 20;  // bounds any width read from a file

void read_rope_scaling(HParams& hp, RopeConfig& rc) {
    const auto type = hp.opt_string("rope.scaling.type");
    if (!type || *type == "none") return;
    if (*type == "llama3") {
        // Written for HF folders (rope_type "llama3"); Llama 3.x GGUFs carry rope_freqs instead.
        Llama3Scaling s;
        s.factor = hp.req_float("rope.scaling.factor");
        s.low_freq_factor = hp.req_float("rope.scaling.low_freq_factor");
        s.high_freq_factor = hp.req_float("rope.scaling.high_freq_factor");
        s.orig_ctx = int(hp.req_int("rope.scaling.original_context_length", 1, kMaxDim * 64));
        if (!hp.ok()) return;
        if (!(s.factor >= 1.0) || !(s.low_freq_factor > 0.0) ||
            !(s.high_freq_factor > s.low_freq_factor)) {
            hp.fail(
                fmt::format("llama3 rope scaling needs factor >= 1 and 0 < low_freq_factor < "
                            "high_freq_factor (got {}, {}, {})",
                            s.factor, s.low_freq_factor, s.high_freq_factor));
            return;
        }
        rc.freq_divisors = llama3_freq_divisors(rc.n_dims, rc.freq_base, s);
        return;
    }
    if (*type != "yarn") {
        hp.fail(fmt::format("rope scaling type '{}' is not supported (supported: yarn, llama3)",
                            *type));
        return;
    }
    rc.yarn_factor = hp.req_positive("rope.scaling.factor");
    rc.yarn_orig_ctx = int(hp.req_int("rope.scaling.original_context_length", 1, kMaxDim * 64));
    rc.yarn_beta_fast = hp.opt_positive("rope.scaling.yarn_beta_fast", 32.0);
    rc.yarn_beta_slow = hp.opt_positive("rope.scaling.yarn_beta_slow", 1.0);
}

AttentionConfig read_attention_config(HParams& hp, int n_embd, bool neox) {
    AttentionConfig a;
    a.n_head = int(hp.req_int("attention.head_count", 1, 4096));
    a.n_head_kv = int(hp.opt_int("attention.head_count_kv", a.n_head, 1, 4096));
    a.head_dim = int(hp.opt_int("attention.key_length", n_embd / std::max(1, a.n_head), 1, 65536));
    // Only MLA has separate value heads; elsewhere value_length must equal the key length.
    const int64_t v_len = hp.opt_int("attention.value_length", a.head_dim, 1, 65536);
    if (hp.ok() && v_len != a.head_dim)
        hp.fail(fmt::format("attention.value_length = {} but the key/head length is {}; this "
                            "family needs them equal",
                            v_len, a.head_dim));
    a.scale = float(1.0 / std::sqrt(double(a.head_dim)));
    a.rope.n_dims = int(hp.opt_int("rope.dimension_count", a.head_dim, 2, a.head_dim));
    a.rope.freq_base = hp.opt_positive("rope.freq_base", 10000.0);
    a.rope.neox = neox;
    read_rope_scaling(hp, a.rope);
    if (hp.ok() && a.n_head % a.n_head_kv != 0)
        hp.fail(fmt::format("attention.head_count {} is not a multiple of head_count_kv {}",
                            a.n_head, a.n_head_kv));
    if (hp.ok() && a.rope.n_dims % 2 != 0) hp.fail("rope.dimension_count must be even");
    return a;
}

MoeConfig read_moe_counts(HParams& hp, int64_t n_ff_default) {
    MoeConfig m;
    m.n_expert = int(hp.opt_int("expert_count", 0, 0, 4096));
    if (m.n_expert == 0) return m;
    m.n_expert_used = int(hp.req_int("expert_used_count", 1, m.n_expert));
    m.n_ff_exp = int(hp.opt_int("expert_feed_forward_length", n_ff_default, 1, kMaxDim));
    return m;
}

void bind_attention(TensorBinder& tb, int il, const AttentionConfig& a, int n_embd,
                    const AttnTensors& spec, AttentionWeights& w) {
    const int64_t q_w = int64_t(a.n_head) * a.head_dim, kv_w = int64_t(a.n_head_kv) * a.head_dim;
    w.wq = tb.req(blk(il, "attn_q.weight"), {q_w, n_embd});
    w.wk = tb.req(blk(il, "attn_k.weight"), {kv_w, n_embd});
    w.wv = tb.req(blk(il, "attn_v.weight"), {kv_w, n_embd});
    w.wo = tb.req(blk(il, "attn_output.weight"), {n_embd, q_w});
    if (spec.qkv_bias) {
        w.bq = tb.req_f32(blk(il, "attn_q.bias"), {q_w});
        w.bk = tb.req_f32(blk(il, "attn_k.bias"), {kv_w});
        w.bv = tb.req_f32(blk(il, "attn_v.bias"), {kv_w});
    }
    if (spec.o_bias) w.bo = tb.req_f32(blk(il, "attn_output.bias"), {n_embd});
    if (a.qk_norm == QkNorm::PerHead) {
        w.q_norm = tb.req_f32(blk(il, "attn_q_norm.weight"), {a.head_dim});
        w.k_norm = tb.req_f32(blk(il, "attn_k_norm.weight"), {a.head_dim});
    } else if (a.qk_norm == QkNorm::Whole) {
        w.q_norm = tb.req_f32(blk(il, "attn_q_norm.weight"), {q_w});
        w.k_norm = tb.req_f32(blk(il, "attn_k_norm.weight"), {kv_w});
    }
    if (spec.sinks) w.sinks = tb.req_f32(blk(il, "attn_sinks.weight"), {a.n_head});
}

namespace {

// attn_kv_b [n_head * (nope + v), kv_lora] (HF kv_b_proj) into the absorbed form: wk_b
// [n_head, kv_lora, nope] (the K-nope rows of each head, transposed) and wv_b [n_head, v,
// kv_lora] (the V rows). wv_b keeps the file's type (rows are copied whole, quantized or not);
// wk_b is transposed, so it is dequantized: to bf16 when the file is bf16 (exact), else to f32
// (exact for every block type). Cost: n_head * kv_lora * nope * 4 bytes per layer, e.g.
// 4 MiB per layer for DeepSeek-V2-Lite, 32 MiB per layer (2 GiB for 61 layers) for V3.
void split_kv_b(Model& m, const MlaConfig& c, const TensorView& kv_b, MlaWeights& w) {
    const int64_t H = c.n_head, L = c.kv_lora_rank, nope = c.qk_nope, V = c.v_head;
    const int64_t per_head = nope + V;
    const int64_t row_bytes = kv_b.row_bytes();
    // [n_head, v, kv_lora]: rows nope..nope+v-1 of each head, bytes unchanged.
    std::vector<uint8_t> v_bytes(size_t(H * V * row_bytes));
    for (int64_t h = 0; h < H; ++h)
        std::memcpy(v_bytes.data() + h * V * row_bytes, kv_b.row(h * per_head + nope),
                    size_t(V * row_bytes));
    w.wv_b = m.own_bytes(kv_b.dtype, Shape{H, V, L}, std::move(v_bytes));

    const DType kt = kv_b.dtype == DType::BF16 ? DType::BF16 : DType::F32;
    std::vector<float> row(static_cast<size_t>(L));  // one dequantized kv_b row [kv_lora]
    std::vector<float> k(size_t(H * L * nope));      // [n_head, kv_lora, nope]
    for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < nope; ++j) {
            ops::dequantize_row(kv_b.dtype, kv_b.row(h * per_head + j), row.data(), L);
            for (int64_t l = 0; l < L; ++l) k[size_t((h * L + l) * nope + j)] = row[size_t(l)];
        }
    std::vector<uint8_t> k_bytes(k.size() * (kt == DType::F32 ? 4 : 2));
    if (kt == DType::F32) {
        std::memcpy(k_bytes.data(), k.data(), k_bytes.size());
    } else {
        for (size_t i = 0; i < k.size(); ++i) {
            const uint16_t b = f32_to_bf16(k[i]);  // exact: the values came from bf16
            std::memcpy(k_bytes.data() + 2 * i, &b, 2);
        }
    }
    w.wk_b = m.own_bytes(kt, Shape{H, L, nope}, std::move(k_bytes));
}

}  // namespace

void bind_mla(TensorBinder& tb, int il, const MlaConfig& c, int n_embd, MlaWeights& w) {
    const int64_t qk = c.qk_nope + c.qk_rope;
    if (c.q_lora_rank > 0) {
        w.wq_a = tb.req(blk(il, "attn_q_a.weight"), {c.q_lora_rank, n_embd});
        w.q_a_norm = tb.req_f32(blk(il, "attn_q_a_norm.weight"), {c.q_lora_rank});
        w.wq_b = tb.req(blk(il, "attn_q_b.weight"), {c.n_head * qk, c.q_lora_rank});
    } else {
        w.wq = tb.req(blk(il, "attn_q.weight"), {c.n_head * qk, n_embd});
    }
    w.wkv_a = tb.req(blk(il, "attn_kv_a_mqa.weight"), {c.kv_lora_rank + c.qk_rope, n_embd});
    w.kv_a_norm = tb.req_f32(blk(il, "attn_kv_a_norm.weight"), {c.kv_lora_rank});
    w.wo = tb.req(blk(il, "attn_output.weight"), {n_embd, int64_t(c.n_head) * c.v_head});
    const Shape k_b{c.n_head, c.kv_lora_rank, c.qk_nope}, v_b{c.n_head, c.v_head, c.kv_lora_rank};
    const Shape kv_b{c.n_head * (c.qk_nope + c.v_head), c.kv_lora_rank};
    // Files converted before the K/V split carry only attn_kv_b (plan mode lists the split form).
    const std::string k_name = blk(il, "attn_k_b.weight"), v_name = blk(il, "attn_v_b.weight");
    const std::string kv_name = blk(il, "attn_kv_b.weight");
    if (!tb.model().plan && !tb.has(k_name) && !tb.has(v_name) && tb.has(kv_name)) {
        const TensorView t = tb.req(kv_name, kv_b);
        if (tb.ok()) split_kv_b(tb.model(), c, t, w);
        return;
    }
    w.wk_b = tb.req(k_name, k_b);
    w.wv_b = tb.req(v_name, v_b);
}

void bind_rope_freqs(TensorBinder& tb, RopeConfig& rc) {
    if (tb.model().plan) return;  // an optional extra, not part of a family's tensor list
    const F32Vec f = tb.opt_f32("rope_freqs.weight", {rc.n_dims / 2});
    if (f.empty()) return;
    rc.freq_divisors.assign(f.p, f.p + f.n);
    for (int64_t i = 0; i < f.n; ++i)
        if (!(std::isfinite(f.p[i]) && f.p[i] > 0.0f)) {
            tb.fail(fmt::format("tensor 'rope_freqs.weight'[{}] = {} is not a positive divisor", i,
                                f.p[i]));
            return;
        }
}

void bind_ffn(TensorBinder& tb, int il, int64_t n_ff, int n_embd, const char* suffix,
              FfnWeights& w) {
    const std::string s = suffix;
    w.gate = tb.req(blk(il, ("ffn_gate" + s + ".weight").c_str()), {n_ff, n_embd});
    w.up = tb.req(blk(il, ("ffn_up" + s + ".weight").c_str()), {n_ff, n_embd});
    w.down = tb.req(blk(il, ("ffn_down" + s + ".weight").c_str()), {n_embd, n_ff});
}

void bind_moe(TensorBinder& tb, int il, const MoeConfig& c, int n_embd, const MoeTensors& spec,
              MoeWeights& w) {
    const int64_t E = c.n_expert, F = c.n_ff_exp;
    w.router = tb.req(blk(il, "ffn_gate_inp.weight"), {E, n_embd});
    if (spec.router_bias) w.router_b = tb.req_f32(blk(il, "ffn_gate_inp.bias"), {E});
    w.selection_bias = tb.opt_f32(blk(il, "exp_probs_b.bias"), {E});
    w.gate_exps = tb.req(blk(il, "ffn_gate_exps.weight"), {E, F, n_embd});
    w.up_exps = tb.req(blk(il, "ffn_up_exps.weight"), {E, F, n_embd});
    w.down_exps = tb.req(blk(il, "ffn_down_exps.weight"), {E, n_embd, F});
    if (spec.expert_bias) {
        w.gate_exps_b = tb.opt_f32_tensor(blk(il, "ffn_gate_exps.bias"), {E, F});
        w.up_exps_b = tb.opt_f32_tensor(blk(il, "ffn_up_exps.bias"), {E, F});
        w.down_exps_b = tb.opt_f32_tensor(blk(il, "ffn_down_exps.bias"), {E, n_embd});
        if (tb.ok() && (w.gate_exps_b.empty() || w.up_exps_b.empty() || w.down_exps_b.empty()))
            w.gate_exps_b = tb.req(blk(il, "ffn_gate_exps.bias"), {E, F}),
            w.up_exps_b = tb.req(blk(il, "ffn_up_exps.bias"), {E, F}),
            w.down_exps_b = tb.req(blk(il, "ffn_down_exps.bias"), {E, n_embd});
    }
    if (c.n_ff_shexp > 0) {
        bind_ffn(tb, il, c.n_ff_shexp, n_embd, "_shexp", w.shared);
        if (spec.shared_gate)
            w.shared_gate = tb.req(blk(il, "ffn_gate_inp_shexp.weight"), {1, n_embd});
    }
}

Result<void> bind_standard_layers(const ModelSource& src, Model& m, const StandardLayerSpec& spec) {
    ModelConfig& c = m.config;
    TensorBinder tb(src, m);
    bind_globals(tb, m);
    if (c.use_mla) {
        bind_rope_freqs(tb, c.mla.rope);
    } else if (!c.attn.empty()) {
        bind_rope_freqs(tb, c.attn[0].rope);
        for (AttentionConfig& a : c.attn) a.rope.freq_divisors = c.attn[0].rope.freq_divisors;
    }
    m.layers.resize(size_t(c.n_layer));
    for (int il = 0; il < c.n_layer; ++il) {
        LayerWeights& L = m.layers[size_t(il)];
        L.attn_norm = tb.req_f32(blk(il, "attn_norm.weight"), {c.n_embd});
        if (c.use_mla)
            bind_mla(tb, il, c.mla, c.n_embd, L.mla);
        else
            bind_attention(tb, il, c.attn[size_t(il)], c.n_embd, spec.attn, L.attn);
        L.ffn_norm = tb.req_f32(blk(il, spec.ffn_norm), {c.n_embd});
        L.is_moe = il >= spec.n_leading_dense && c.moe.n_expert > 0;
        c.is_moe[size_t(il)] = L.is_moe;
        if (L.is_moe)
            bind_moe(tb, il, c.moe, c.n_embd, spec.moe, L.moe);
        else
            bind_ffn(tb, il, c.n_ff, c.n_embd, "", L.ffn);
    }
    if (!tb.ok()) return make_error("{}", tb.error());
    return {};
}

void bind_globals(TensorBinder& tb, Model& m) {
    const auto& c = m.config;
    m.token_embd = tb.req("token_embd.weight", {c.n_vocab, c.n_embd});
    m.output_norm = tb.req_f32("output_norm.weight", {c.n_embd});
    m.output = tb.opt("output.weight", {c.n_vocab, c.n_embd});
    if (m.output.empty()) m.output = m.token_embd;  // tied embeddings
}

Result<void> validate_common(const ModelConfig& c) {
    if (c.n_vocab <= 0)
        return make_error("vocabulary size is {} (tokenizer or token_embd missing?)", c.n_vocab);
    const auto& m = c.moe;
    if (m.n_expert > 0) {
        if (m.n_expert_used < 1 || m.n_expert_used > m.n_expert)
            return make_error("expert_used_count {} must be in [1, expert_count {}]",
                              m.n_expert_used, m.n_expert);
        if (m.n_group < 1 || m.n_expert % m.n_group != 0 || m.n_group_used < 1 ||
            m.n_group_used > m.n_group)
            return make_error("expert groups ({} used of {}) do not divide {} experts",
                              m.n_group_used, m.n_group, m.n_expert);
        if (m.n_group > 1 && m.n_expert_used > m.n_group_used * (m.n_expert / m.n_group))
            return make_error("expert_used_count {} exceeds the experts of the {} selected groups",
                              m.n_expert_used, m.n_group_used);
    }
    return {};
}

}  // namespace moe

namespace moe {
void read_base_config(HParams& hp, const ModelSource& src, ModelConfig& c) {
    c.n_embd = int(hp.req_int("embedding_length", 1, kMaxDim));
    c.n_layer = int(hp.req_int("block_count", 1, 4096));
    c.n_ctx_train = int(hp.opt_int("context_length", 4096, 1, int64_t(1) << 31));
    c.rms_eps = float(hp.opt_positive("attention.layer_norm_rms_epsilon", 1e-5));
    c.name = src.get_string("general.name").value_or("");
    if (auto t = src.tensor("token_embd.weight"); t && t->shape.rank == 2) {
        c.n_vocab = int(t->shape[0]);
        const int64_t meta = hp.has("vocab_size") ? hp.req_int("vocab_size", 1, int64_t(1) << 24) : c.n_vocab;
        if (hp.ok() && meta != c.n_vocab)
            hp.fail(fmt::format("metadata vocab_size = {} but token_embd.weight has {} rows", meta,
                                c.n_vocab));
    } else if (hp.has("vocab_size"))
        c.n_vocab = int(hp.req_int("vocab_size", 1, int64_t(1) << 24));
    else if (const gguf::Array* toks = src.get_array("tokenizer.ggml.tokens"))
        c.n_vocab = int(toks->items.size());
    c.is_moe.assign(size_t(c.n_layer), 0);
}
}  // namespace moe
