#include "models/synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "core/half.h"
#include "core/thread_pool.h"
#include "gguf/gguf_writer.h"
#include "kernels/ops.h"
#include "models/model.h"

namespace moe {

const std::vector<SynthFileType>& synth_file_types() {
    // ids: upstream llama_ftype values (general.file_type).
    static const std::vector<SynthFileType> kTypes = {
        {"f32", 0, DType::F32},        {"f16", 1, DType::F16},        {"bf16", 32, DType::BF16},
        {"q8_0", 7, DType::Q8_0},      {"q4_0", 2, DType::Q4_0},      {"q4_1", 3, DType::Q4_1},
        {"q5_0", 8, DType::Q5_0},      {"q5_1", 9, DType::Q5_1},      {"q2_k", 10, DType::Q2_K},
        {"q3_k_m", 12, DType::Q3_K},   {"q4_k_m", 15, DType::Q4_K},   {"q5_k_m", 17, DType::Q5_K},
        {"q6_k", 18, DType::Q6_K},     {"iq4_nl", 25, DType::IQ4_NL}, {"iq4_xs", 30, DType::IQ4_XS},
        {"mxfp4_moe", 38, DType::MXFP4},
    };
    return kTypes;
}

const SynthFileType* find_synth_file_type(std::string_view name) {
    std::string n(name);
    for (auto& c : n) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (n == "q3_k") n = "q3_k_m";
    if (n == "mxfp4") n = "mxfp4_moe";
    for (const auto& t : synth_file_types())
        if (t.name == n) return &t;
    return nullptr;
}

std::string synth_file_type_names() {
    std::string s;
    for (const auto& t : synth_file_types()) s += (s.empty() ? "" : ", ") + t.name;
    return s;
}

namespace {

gguf::Value* find_kv(Preset& p, const std::string& key) {
    for (auto& [k, v] : p.metadata)
        if (k == key) return &v;
    return nullptr;
}

bool contains(const std::string& s, const char* sub) { return s.find(sub) != std::string::npos; }

bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int layer_of(const std::string& name) {
    if (name.rfind("blk.", 0) != 0) return -1;
    return std::atoi(name.c_str() + 4);
}

bool row_fits(DType t, int64_t row) { return row % traits(t).block_elems == 0; }

struct MixContext {
    int n_expert = 0, n_gqa = 1, n_layer = 1;
    int n_attn_v = 0, i_attn_v = 0;
};

// The upstream quantizer's choice for one quantizable tensor (see synth.h).
DType mix_type(const SynthFileType& ft, const std::string& name, const Shape& shape, MixContext& c) {
    const DType base = ft.base;
    if (base == DType::F32 || base == DType::F16 || base == DType::BF16) return base;
    const int64_t row = shape.last();
    if (ft.name == "mxfp4_moe") return contains(name, "_exps") ? DType::MXFP4 : DType::Q8_0;
    const std::string& f = ft.name;
    DType t = base;
    if (name == "output.weight") {
        if (row % 256 != 0) t = DType::Q8_0;
        else if (t != DType::Q8_0) t = DType::Q6_K;
    } else if (contains(name, "attn_v.weight")) {
        if (f == "q2_k") t = c.n_gqa >= 4 ? DType::Q4_K : DType::Q3_K;
        else if (f == "q3_k_m") t = c.i_attn_v < 2 ? DType::Q5_K : DType::Q4_K;
        else if ((f == "q4_k_m" || f == "q5_k_m") && use_more_bits(c.i_attn_v, c.n_attn_v)) t = DType::Q6_K;
        else if ((f == "iq4_nl" || f == "iq4_xs") && c.n_gqa >= 4) t = DType::Q5_K;
        if (c.n_expert == 8) t = DType::Q8_0;
        ++c.i_attn_v;
    } else if (contains(name, "attn_k.weight")) {
        if (c.n_expert == 8) t = DType::Q8_0;
    } else if (contains(name, "attn_output.weight")) {
        if (c.n_expert == 8) {
            if (f == "q2_k" || f == "q3_k_m" || f == "iq4_nl" || f == "q4_k_m" || f == "iq4_xs")
                t = DType::Q5_K;
        } else {
            if (f == "q2_k") t = DType::Q3_K;
            else if (f == "q3_k_m") t = DType::Q4_K;
        }
    } else if (contains(name, "ffn_down")) {
        const int i = std::max(0, layer_of(name)), n = c.n_layer;
        if (f == "q2_k") t = DType::Q3_K;
        else if (f == "q3_k_m") t = i < n / 16 ? DType::Q5_K : DType::Q4_K;
        else if ((f == "q4_k_m" || f == "q5_k_m") && use_more_bits(i, n)) t = DType::Q6_K;
        else if ((f == "iq4_nl" || f == "iq4_xs") && i < n / 8) t = DType::Q5_K;
    }
    if (!row_fits(t, row)) {
        switch (t) {
            case DType::Q2_K: case DType::Q3_K: case DType::IQ4_XS: t = DType::IQ4_NL; break;
            case DType::Q4_K: t = DType::Q5_0; break;
            case DType::Q5_K: t = DType::Q5_1; break;
            case DType::Q6_K: t = DType::Q8_0; break;
            default: break;
        }
        if (!row_fits(t, row)) t = DType::F16;
    }
    return t;
}

// ggml's n_dims: dims up to the last one > 1 (in ggml order), i.e. leading 1s do not count.
int ggml_dims(const Shape& s) {
    int i = 0;
    while (i < s.rank - 1 && s[i] == 1) ++i;
    return s.rank - i;
}

bool quantizable(const std::string& name, const Shape& s) {
    const bool weight = name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
    return weight && ggml_dims(s) >= 2 && !contains(name, "ffn_gate_inp.weight");
}

}  // namespace

Result<Preset> preset_with_layers(const Preset& src, int n_layers) {
    Preset p = src;
    gguf::Value* bc = find_kv(p, p.arch + ".block_count");
    if (!bc) return make_error("preset '{}' has no block_count", p.name);
    const int64_t orig = bc->as_int().value_or(0);
    if (n_layers < 1 || n_layers > orig)
        return make_error("--layers {} is outside [1, {}] for {}", n_layers, orig, p.name);
    *bc = meta_u32(uint64_t(n_layers));
    if (gguf::Value* dense = find_kv(p, p.arch + ".leading_dense_block_count")) {
        const int64_t d = dense->as_int().value_or(0);
        *dense = meta_u32(uint64_t(std::min<int64_t>(d, std::max(0, n_layers - 1))));
    }
    return p;
}

Result<std::vector<SynthTensor>> synth_tensors(const Preset& p, const SynthFileType& ft) {
    MOE_TRY(auto model, plan_model(preset_source(p)));
    const ModelConfig& c = model->config;
    MixContext mc;
    mc.n_expert = c.moe.n_expert;
    mc.n_layer = c.n_layer;
    if (!c.attn.empty() && c.attn[0].n_head_kv > 0) mc.n_gqa = c.attn[0].n_head / c.attn[0].n_head_kv;
    const bool sigmoid = c.moe.gating == Gating::Sigmoid;
    std::vector<SynthTensor> out;
    for (const auto& t : *model->plan) {
        if (!t.required) {
            const bool keep = (t.name == "output.weight" && !p.tied_embeddings) ||
                              (contains(t.name, "exp_probs_b") && sigmoid);
            if (!keep) continue;
        }
        if (contains(t.name, "attn_v.weight")) ++mc.n_attn_v;
        out.push_back({t.name, t.shape, DType::F32});
    }
    for (auto& t : out)
        if (quantizable(t.name, t.shape)) t.dtype = mix_type(ft, t.name, t.shape, mc);
    return out;
}

namespace {

struct Rng {
    uint64_t s;
    uint64_t next() {  // splitmix64
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
    // Two standard normals (Box-Muller).
    void normal2(float& a, float& b) {
        const uint64_t r = next();
        const float u1 = (float(r >> 40) + 1.0f) * (1.0f / 16777217.0f);
        const float u2 = float((r >> 8) & 0xffffff) * (1.0f / 16777216.0f);
        const float m = std::sqrt(-2.0f * std::log(u1));
        a = m * std::cos(6.28318530718f * u2);
        b = m * std::sin(6.28318530718f * u2);
    }
    void bytes(uint8_t* p, size_t n) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const uint64_t r = next();
            std::memcpy(p + i, &r, 8);
        }
        if (i < n) {
            const uint64_t r = next();
            std::memcpy(p + i, &r, n - i);
        }
    }
};

// Where a block type keeps its scales: f16 d (and dmin/m) or an e8m0 exponent.
struct ScaleSpec {
    int d_off = 0;
    int m_off = -1;      // second f16 (dmin or m), -1: none
    float m_ratio = 0;   // m = m_ratio * d: centres the values
    bool e8m0 = false;   // MXFP4
    float unit = 1;      // d giving an RMS of 1 (calibrated)
};

ScaleSpec layout(DType t) {
    switch (t) {
        case DType::Q4_1: return {0, 2, -8.0f};
        case DType::Q5_1: return {0, 2, -16.0f};
        case DType::Q2_K: return {80, 82, 1.5f};
        case DType::Q3_K: return {108};
        case DType::Q4_K: return {0, 2, 7.5f};
        case DType::Q5_K: return {0, 2, 15.5f};
        case DType::Q6_K: return {208};
        case DType::MXFP4: return {0, -1, 0, true};
        default: return {0};  // Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS: f16 d first
    }
}

void put_f16(uint8_t* p, float v) {
    const uint16_t h = f32_to_fp16(v);
    std::memcpy(p, &h, 2);
}

void set_scales(const ScaleSpec& s, uint8_t* blk, float d) {
    if (s.e8m0) {
        blk[0] = uint8_t(std::clamp(128.0 + std::round(std::log2(d)), 1.0, 254.0));
        return;
    }
    put_f16(blk + s.d_off, d);
    if (s.m_off >= 0) put_f16(blk + s.m_off, s.m_ratio * d);
}

// Measures the RMS of random blocks at unit scale, once per type.
ScaleSpec calibrated(DType t) {
    ScaleSpec s = layout(t);
    const auto& tr = traits(t);
    const int nb = 256;
    std::vector<uint8_t> buf(size_t(nb) * size_t(tr.block_bytes));
    Rng rng{0x5eed0000ull + uint64_t(t)};
    rng.bytes(buf.data(), buf.size());
    for (int b = 0; b < nb; ++b) set_scales(s, buf.data() + size_t(b) * tr.block_bytes, 1.0f);
    std::vector<float> x(size_t(nb) * size_t(tr.block_elems));
    ops::dequantize_row(t, buf.data(), x.data(), int64_t(x.size()));
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const double rms = std::sqrt(ss / double(x.size()));
    s.unit = rms > 0 ? float(1.0 / rms) : 1.0f;
    return s;
}

const ScaleSpec& scale_spec(DType t) {
    static const std::vector<ScaleSpec> kSpecs = [] {
        std::vector<ScaleSpec> v(64);
        for (DType d : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K,
                        DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL,
                        DType::IQ4_XS, DType::MXFP4})
            v[size_t(d)] = calibrated(d);
        return v;
    }();
    return kSpecs[size_t(t)];
}

struct Dist {
    float mean = 0, sigma = 0.02f;
};

Dist dist_of(const std::string& name) {
    if (contains(name, "norm")) return {1.0f, 0.02f};
    if (contains(name, "ffn_gate_inp")) return {0.0f, 0.06f};
    return {};
}

// Fills n elements (a whole number of blocks) of type t at dst.
void fill(DType t, const Dist& d, Rng& rng, uint8_t* dst, int64_t n) {
    if (t == DType::F32 || t == DType::F16 || t == DType::BF16) {
        for (int64_t i = 0; i < n; i += 2) {
            float v[2];
            rng.normal2(v[0], v[1]);
            for (int k = 0; k < 2 && i + k < n; ++k) {
                const float x = d.mean + d.sigma * v[k];
                uint8_t* o = dst + (i + k) * (t == DType::F32 ? 4 : 2);
                if (t == DType::F32) {
                    std::memcpy(o, &x, 4);
                } else {
                    const uint16_t h = t == DType::F16 ? f32_to_fp16(x) : f32_to_bf16(x);
                    std::memcpy(o, &h, 2);
                }
            }
        }
        return;
    }
    const auto& tr = traits(t);
    const ScaleSpec& s = scale_spec(t);
    const int64_t nb = n / tr.block_elems;
    rng.bytes(dst, size_t(nb * tr.block_bytes));
    for (int64_t b = 0; b < nb; ++b) {
        const float jitter = 0.75f + 0.5f * rng.uniform();
        set_scales(s, dst + b * tr.block_bytes, d.sigma * s.unit * jitter);
    }
}

}  // namespace

Result<SynthResult> synth_write(const Preset& p, const SynthFileType& ft, const std::string& path,
                                const SynthOptions& opt) {
    MOE_TRY(auto tensors, synth_tensors(p, ft));
    gguf::Writer w(32);
    bool have_ftype = false;
    const auto src = preset_source(p);  // kept alive: the loop reads its metadata
    for (const auto& [k, v] : src->metadata()) {
        if (k == "general.file_type") {
            w.add_kv(k, meta_u32(ft.ftype_id));
            have_ftype = true;
        } else {
            w.add_kv(k, v);
        }
    }
    if (!have_ftype) w.add_kv("general.file_type", meta_u32(ft.ftype_id));
    SynthResult res;
    for (const auto& t : tensors) {
        MOE_TRY_VOID(w.add_tensor(t.name, t.dtype, t.shape));
        res.n_params += uint64_t(t.shape.numel());
    }
    res.n_tensors = tensors.size();
    res.header_bytes = w.header_bytes();
    res.file_bytes = w.file_bytes();
    MOE_TRY(const std::unique_ptr<ThreadPool> pool_ptr, ThreadPool::create(opt.n_threads));
    ThreadPool& pool = *pool_ptr;
    const int n_threads = pool.size();
    MOE_TRY_VOID(w.open(path));
    constexpr int64_t kChunkBytes = 4 << 20;
    std::vector<std::vector<uint8_t>> bufs(static_cast<size_t>(n_threads));
    const uint64_t total = w.data_bytes();
    uint64_t done = 0;
    for (size_t ti = 0; ti < tensors.size(); ++ti) {
        const auto& t = tensors[ti];
        const Dist dist = dist_of(t.name);
        const int64_t rows = t.shape.rows(), width = t.shape.last();
        const int64_t row_bytes = dtype_row_bytes(t.dtype, width);
        const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, row_bytes));
        const int64_t n_chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
        for (int64_t c0 = 0; c0 < n_chunks; c0 += n_threads) {
            const int64_t nc = std::min<int64_t>(n_threads, n_chunks - c0);
            pool.parallel_for(nc, [&](int64_t k) {
                const int64_t c = c0 + k;
                const int64_t r0 = c * rows_per_chunk, r1 = std::min(rows, r0 + rows_per_chunk);
                auto& buf = bufs[size_t(k)];
                buf.resize(size_t((r1 - r0) * row_bytes));
                Rng rng{opt.seed * 0x2545f4914f6cdd1dull ^ (uint64_t(ti) << 40) ^ uint64_t(c)};
                rng.next();
                fill(t.dtype, dist, rng, buf.data(), (r1 - r0) * width);
            });
            for (int64_t k = 0; k < nc; ++k) {
                MOE_TRY_VOID(w.append(bufs[size_t(k)].data(), bufs[size_t(k)].size()));
                done += bufs[size_t(k)].size();
            }
            if (opt.progress) opt.progress(done, total);
        }
    }
    MOE_TRY_VOID(w.close());
    return res;
}

}  // namespace moe
