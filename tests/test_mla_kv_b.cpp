// DeepSeek GGUFs converted before the K/V split carry attn_kv_b [n_head * (nope + v), kv_lora]
// (HF kv_b_proj) instead of attn_k_b / attn_v_b. These tests derive such files from the
// deepseek2 / deepseek3 fixtures by merging the split tensors back (the inverse of the split the
// upstream converter does) and check that they run like the originals.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/half.h"
#include "fixtures.h"
#include "formats/model_source.h"
#include "gguf_rewrite.h"
#include "kernels/ops.h"
#include "kernels/ref/quantize.h"
#include "models/model.h"
#include "runtime/session.h"

namespace moe {
namespace {

std::vector<float> dequantized(const TensorView& t) {
    std::vector<float> out(size_t(t.shape.numel()));
    const int64_t w = t.shape.last();
    for (int64_t r = 0; r < t.shape.rows(); ++r)
        ops::dequantize_row(t.dtype, t.row(r), out.data() + r * w, w);
    return out;
}

std::vector<uint8_t> encode(const std::vector<float>& x, int64_t row_len, DType t) {
    const int64_t rows = int64_t(x.size()) / row_len;
    std::vector<uint8_t> out(size_t(rows * dtype_row_bytes(t, row_len)));
    const int64_t rb = dtype_row_bytes(t, row_len);
    for (int64_t r = 0; r < rows; ++r) {
        const float* src = x.data() + r * row_len;
        uint8_t* dst = out.data() + r * rb;
        if (t == DType::F32) {
            std::memcpy(dst, src, size_t(rb));
        } else if (t == DType::BF16) {
            for (int64_t i = 0; i < row_len; ++i) {
                const uint16_t b = f32_to_bf16(src[i]);
                std::memcpy(dst + 2 * i, &b, 2);
            }
        } else {
            ref::quantize_row_fn(t)(src, dst, row_len);
        }
    }
    return out;
}

// Writes `merged`: the fixture file with each layer's attn_k_b [H, L, nope] and attn_v_b
// [H, v, L] replaced by attn_kv_b [H * (nope + v), L] stored as `kv_type`. For a quantized
// kv_type it also writes `split`: the split form holding the same quantized values the way a
// converter that split first would have stored them (v_b: the V rows quantized; k_b: f32 of the
// dequantized K rows, transposed), since quantized matmuls round their activations too and only
// the same weights in the same types can give the same logits.
void merge_kv_b(const std::string& in, const std::string& merged, DType kv_type,
                const std::string& split = "") {
    auto src = open_model_source(in);
    ASSERT_TRUE(src.ok()) << src.message();
    test::GgufEdit e, s;
    e.drop = s.drop = [](const std::string& n) {
        return n.ends_with("attn_k_b.weight") || n.ends_with("attn_v_b.weight");
    };
    for (int il = 0;; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        auto k = (*src)->tensor(p + "attn_k_b.weight");
        auto v = (*src)->tensor(p + "attn_v_b.weight");
        if (!k || !v) break;
        const int64_t H = k->shape[0], L = k->shape[1], nope = k->shape[2], V = v->shape[1];
        const auto kf = dequantized(*k), vf = dequantized(*v);
        std::vector<float> kv(size_t(H * (nope + V) * L));  // [H * (nope + v), L]
        for (int64_t h = 0; h < H; ++h) {
            for (int64_t j = 0; j < nope; ++j)
                for (int64_t l = 0; l < L; ++l)
                    kv[size_t((h * (nope + V) + j) * L + l)] = kf[size_t((h * L + l) * nope + j)];
            for (int64_t i = 0; i < V; ++i)
                for (int64_t l = 0; l < L; ++l)
                    kv[size_t((h * (nope + V) + nope + i) * L + l)] =
                        vf[size_t((h * V + i) * L + l)];
        }
        auto kv_bytes = encode(kv, L, kv_type);
        if (!split.empty()) {
            const TensorView q{kv_type, Shape{H * (nope + V), L}, kv_bytes.data()};
            const auto kvq = dequantized(q);
            std::vector<float> kq(size_t(H * L * nope));  // [H, L, nope]
            std::vector<float> vr(size_t(H * V * L));     // [H, V, L], unrounded
            for (int64_t h = 0; h < H; ++h) {
                for (int64_t j = 0; j < nope; ++j)
                    for (int64_t l = 0; l < L; ++l)
                        kq[size_t((h * L + l) * nope + j)] =
                            kvq[size_t((h * (nope + V) + j) * L + l)];
                for (int64_t i = 0; i < V; ++i)
                    for (int64_t l = 0; l < L; ++l)
                        vr[size_t((h * V + i) * L + l)] =
                            kv[size_t((h * (nope + V) + nope + i) * L + l)];
            }
            s.add.push_back({p + "attn_k_b.weight", DType::F32, Shape{H, L, nope},
                             encode(kq, nope, DType::F32)});
            s.add.push_back(
                {p + "attn_v_b.weight", kv_type, Shape{H, V, L}, encode(vr, L, kv_type)});
        }
        e.add.push_back(
            {p + "attn_kv_b.weight", kv_type, Shape{H * (nope + V), L}, std::move(kv_bytes)});
    }
    ASSERT_EQ(e.add.size(), 3u) << "the DeepSeek fixtures have 3 layers";
    auto r = test::rewrite_gguf(**src, merged, e);
    ASSERT_TRUE(r.ok()) << r.message();
    if (!split.empty()) {
        r = test::rewrite_gguf(**src, split, s);
        ASSERT_TRUE(r.ok()) << r.message();
    }
}

std::vector<float> logits(const std::string& path, const std::vector<int32_t>& toks) {
    auto m = load_model(path);
    EXPECT_TRUE(m.ok()) << m.message();
    if (!m.ok()) return {};
    SessionOptions so;
    so.n_threads = 2;
    so.n_ctx = 64;
    Session s(**m, so);
    auto r = s.eval_tokens(toks, true);
    EXPECT_TRUE(r.ok()) << r.message();
    return r.ok() ? *r : std::vector<float>{};
}

struct Case {
    std::string name, type;  // fixture, file type
    DType kv_type;           // how attn_kv_b is stored in the derived file
};

class MergedKvB : public testing::TestWithParam<Case> {};

// f32 from f32 files and bf16 from the bf16 file are lossless merges: the derived file must give
// the original's logits. Quantized kv_b (rows of kv_lora = 64: Q8_0, Q4_0) is compared with the
// split form of the same quantized values.
TEST_P(MergedKvB, SameLogitsAsTheSplitForm) {
    const auto& [name, type, kv_type] = GetParam();
    const bool quantized = kv_type != DType::F32 && kv_type != DType::BF16;
    const std::string tag = name + "_" + type + "_" + std::string(dtype_name(kv_type));
    const std::string merged = test::temp_path(tag + "_kv_b.gguf");
    const std::string split = quantized ? test::temp_path(tag + "_split.gguf") : "";
    merge_kv_b(test::gguf_path(name, type), merged, kv_type, split);
    const std::string orig = quantized ? split : test::gguf_path(name, type);
    const auto toks = test::load_ref(name)["tokens"].get<std::vector<int32_t>>();
    auto m = load_model(merged);
    ASSERT_TRUE(m.ok()) << m.message();
    // The split keeps V's rows in the file's type and K (transposed) in f32, or bf16 for bf16.
    const MlaWeights& w = (*m)->layers[0].mla;
    EXPECT_EQ(w.wv_b.dtype, kv_type);
    EXPECT_EQ(w.wk_b.dtype, kv_type == DType::BF16 ? DType::BF16 : DType::F32);
    const auto got = logits(merged, toks), want = logits(orig, toks);
    std::filesystem::remove(merged);
    if (quantized) std::filesystem::remove(split);
    ASSERT_EQ(got.size(), want.size());
    const double mr = test::max_rel(got, want);
    std::printf("[ kv_b     ] %s-%s merged as %s: max_rel %.2e vs the split form\n", name.c_str(),
                type.c_str(), std::string(dtype_name(kv_type)).c_str(), mr);
    EXPECT_LT(mr, 1e-6);
    if (quantized) {
        // And the quantized kv_b really is in use: the logits moved from the f32 file's.
        const auto f32 = logits(test::gguf_path(name, "f32"), toks);
        EXPECT_GT(test::max_rel(got, f32), 1e-5);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, MergedKvB,
    testing::Values(Case{"deepseek2", "f32", DType::F32}, Case{"deepseek3", "f32", DType::F32},
                    Case{"deepseek3", "bf16", DType::BF16}, Case{"deepseek2", "f32", DType::Q8_0},
                    Case{"deepseek3", "f32", DType::Q4_0}),
    [](const auto& i) {
        return i.param.name + "_" + i.param.type + "_" + std::string(dtype_name(i.param.kv_type));
    });

}  // namespace
}  // namespace moe
