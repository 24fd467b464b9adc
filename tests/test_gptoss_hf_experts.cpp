// gpt-oss Hugging Face checkpoints with the experts as published: MXFP4 in U8 `*_blocks` /
// `*_scales` tensors (gate and up interleaved by rows), and the bf16 variant. Each folder is the
// gptoss fixture with its experts rewritten in that layout from the values of a GGUF; its logits
// must equal those of a GGUF holding the same expert values (the upstream mxfp4_moe conversion's
// MXFP4 blocks, or bf16) beside the fixture's f32 tensors.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/half.h"
#include "fixtures.h"
#include "formats/model_source.h"
#include "formats/safetensors.h"
#include "gguf_rewrite.h"
#include "hf_folder_writer.h"
#include "kernels/ops.h"
#include "models/model.h"
#include "runtime/session.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

constexpr int kLayers = 2;  // the gptoss fixture
constexpr int kBlock = 17;  // MXFP4 block bytes: u8 e | u8 qs[16]

const char* const kExperts[] = {"ffn_gate_exps.weight", "ffn_up_exps.weight",
                                "ffn_down_exps.weight"};

std::string blk(int il, const char* name) {
    return "blk." + std::to_string(il) + "." + name;
}
std::string hf_experts(int il, const char* name) {
    return "model.layers." + std::to_string(il) + ".mlp.experts." + name;
}

// MXFP4 rows [E, R, G blocks] -> HF blocks [E, R, G, 16] + scales [E, R, G]: the inverse of
// the loader's repacking, written from the two formats' definitions (MXFP4: qs[j] low = element
// j, high = j + 16; HF: byte k low = element 2k, high = 2k + 1).
void mxfp4_to_hf(const uint8_t* rows, int64_t n_blocks, uint8_t* blocks, uint8_t* scales) {
    for (int64_t b = 0; b < n_blocks; ++b) {
        const uint8_t* src = rows + b * kBlock;
        scales[b] = src[0];
        auto code = [&](int i) { return i < 16 ? src[1 + i] & 0x0F : src[1 + i - 16] >> 4; };
        for (int k = 0; k < 16; ++k)
            blocks[b * 16 + k] = uint8_t(code(2 * k) | code(2 * k + 1) << 4);
    }
}

std::vector<uint8_t> bf16_bytes(const TensorView& t) {
    const int64_t n = t.shape.numel(), w = t.shape.last();
    std::vector<float> f(static_cast<size_t>(n));
    for (int64_t r = 0; r < t.shape.rows(); ++r)
        ops::dequantize_row(t.dtype, t.row(r), f.data() + r * w, w);
    std::vector<uint8_t> out(size_t(n) * 2);
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t b = f32_to_bf16(f[size_t(i)]);
        std::memcpy(out.data() + 2 * i, &b, 2);
    }
    return out;
}

// The fixture's tensors, minus the fused expert weights of every layer.
std::vector<test::StTensor> fixture_without_experts(const SafetensorsFile& st) {
    std::vector<test::StTensor> out;
    for (const auto& t : st.tensors()) {
        if (t.name.ends_with("mlp.experts.gate_up_proj") ||
            t.name.ends_with("mlp.experts.down_proj"))
            continue;
        EXPECT_EQ(t.dtype, DType::F32) << t.name;
        std::vector<int64_t> shape(t.shape.dim.begin(), t.shape.dim.begin() + t.shape.rank);
        out.push_back({t.name, "F32", shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
    }
    return out;
}

void copy_config(const fs::path& dir) {
    const std::string fix = test::model_dir("gptoss");
    for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
        fs::copy_file(fix + "/" + f, dir / f);
}

std::vector<float> logits_of(const std::string& path) {
    auto m = load_model(path);
    EXPECT_TRUE(m.ok()) << m.message();
    if (!m.ok()) return {};
    SessionOptions so;
    so.n_threads = 2;
    so.n_ctx = 64;
    Session s(**m, so);
    auto r = s.eval_tokens(test::load_ref("gptoss")["tokens"].get<std::vector<int32_t>>(), true);
    EXPECT_TRUE(r.ok()) << r.message();
    return r.ok() ? *r : std::vector<float>{};
}

// gptoss-f32.gguf with the three expert weights of each layer replaced.
void write_reference_gguf(const std::string& out, std::vector<test::NewTensor> experts) {
    auto f32 = open_model_source(test::gguf_path("gptoss", "f32"));
    ASSERT_TRUE(f32.ok()) << f32.message();
    test::GgufEdit e;
    e.drop = [](const std::string& n) {
        for (const char* x : kExperts)
            if (n.ends_with(x)) return true;
        return false;
    };
    e.add = std::move(experts);
    auto r = test::rewrite_gguf(**f32, out, e);
    ASSERT_TRUE(r.ok()) << r.message();
}

TEST(GptOssHfExperts, Mxfp4BlocksReadAsTheGgufMxfp4) {
    auto mx = open_model_source(test::gguf_path("gptoss", "mxfp4_moe"));
    ASSERT_TRUE(mx.ok()) << mx.message();
    auto st = SafetensorsFile::open(test::model_dir("gptoss") + "/model.safetensors");
    ASSERT_TRUE(st.ok()) << st.message();
    auto tensors = fixture_without_experts(**st);
    std::vector<test::NewTensor> ref_experts;
    for (int il = 0; il < kLayers; ++il) {
        auto gate = (*mx)->tensor(blk(il, "ffn_gate_exps.weight"));
        auto up = (*mx)->tensor(blk(il, "ffn_up_exps.weight"));
        auto down = (*mx)->tensor(blk(il, "ffn_down_exps.weight"));
        ASSERT_TRUE(gate && up && down);
        ASSERT_EQ(gate->dtype, DType::MXFP4);
        ASSERT_EQ(down->dtype, DType::MXFP4);
        const int64_t E = gate->shape[0], I = gate->shape[1], H = gate->shape[2];
        const int64_t Gh = H / 32, Gi = I / 32;
        // gate_up_proj: rows interleaved, gate row r at 2r, up row r at 2r + 1.
        std::vector<uint8_t> gu_blocks(size_t(E * 2 * I * Gh * 16)),
            gu_scales(size_t(E * 2 * I * Gh));
        for (int64_t e = 0; e < E; ++e)
            for (int64_t r = 0; r < I; ++r)
                for (int par = 0; par < 2; ++par) {
                    const TensorView& src = par == 0 ? *gate : *up;
                    const int64_t row = (e * 2 * I + 2 * r + par) * Gh;
                    mxfp4_to_hf(src.row(e * I + r), Gh, gu_blocks.data() + row * 16,
                                gu_scales.data() + row);
                }
        std::vector<uint8_t> d_blocks(size_t(E * H * Gi * 16)), d_scales(size_t(E * H * Gi));
        for (int64_t row = 0; row < E * H; ++row)
            mxfp4_to_hf(down->row(row), Gi, d_blocks.data() + row * Gi * 16,
                        d_scales.data() + row * Gi);
        tensors.push_back(
            {hf_experts(il, "gate_up_proj_blocks"), "U8", {E, 2 * I, Gh, 16}, gu_blocks});
        tensors.push_back({hf_experts(il, "gate_up_proj_scales"), "U8", {E, 2 * I, Gh}, gu_scales});
        tensors.push_back({hf_experts(il, "down_proj_blocks"), "U8", {E, H, Gi, 16}, d_blocks});
        tensors.push_back({hf_experts(il, "down_proj_scales"), "U8", {E, H, Gi}, d_scales});
        for (const TensorView* t : {&*gate, &*up, &*down}) {
            const char* name = t == &*gate ? kExperts[0] : t == &*up ? kExperts[1] : kExperts[2];
            const auto* p = static_cast<const uint8_t*>(t->data);
            ref_experts.push_back(
                {blk(il, name), DType::MXFP4, t->shape, std::vector<uint8_t>(p, p + t->nbytes())});
        }
    }
    test::ScratchDir dir("gptoss_hf_mxfp4");
    copy_config(dir.path());
    test::write_safetensors_file(dir.path() / "model.safetensors", tensors);
    const std::string ref = test::temp_path("gptoss_f32_mxfp4_experts.gguf");
    write_reference_gguf(ref, ref_experts);

    // The folder's experts are MXFP4 with the GGUF's exact bytes.
    auto hf = open_model_source(dir.str());
    ASSERT_TRUE(hf.ok()) << hf.message();
    for (int il = 0; il < kLayers; ++il)
        for (const char* x : kExperts) {
            auto a = (*hf)->tensor(blk(il, x));
            auto b = (*mx)->tensor(blk(il, x));
            ASSERT_TRUE(a && b) << blk(il, x);
            EXPECT_EQ(a->dtype, DType::MXFP4) << blk(il, x);
            ASSERT_TRUE(a->shape == b->shape) << a->shape.str() << " vs " << b->shape.str();
            EXPECT_EQ(std::memcmp(a->data, b->data, size_t(b->nbytes())), 0) << blk(il, x);
        }
    const auto got = logits_of(dir.str()), want = logits_of(ref);
    fs::remove(ref);
    ASSERT_EQ(got.size(), want.size());
    const double mr = test::max_rel(got, want);
    std::printf("[ gpt-oss  ] HF MXFP4 folder vs GGUF with the same MXFP4 experts: max_rel %.2e\n",
                mr);
    EXPECT_LT(mr, 1e-6);
    // And the MXFP4 experts are in use: far from the f32 fixture's logits at this size.
    EXPECT_GT(test::max_rel(got, logits_of(test::gguf_path("gptoss", "f32"))), 1e-4);
}

TEST(GptOssHfExperts, Bf16ExpertsReadAsBf16) {
    auto f32 = open_model_source(test::gguf_path("gptoss", "f32"));
    ASSERT_TRUE(f32.ok()) << f32.message();
    auto st = SafetensorsFile::open(test::model_dir("gptoss") + "/model.safetensors");
    ASSERT_TRUE(st.ok()) << st.message();
    auto tensors = fixture_without_experts(**st);
    std::vector<test::NewTensor> ref_experts;
    for (int il = 0; il < kLayers; ++il) {
        for (const char* name : {"gate_up_proj", "down_proj"}) {
            const SafetensorsTensor* t = (*st)->find(hf_experts(il, name));
            ASSERT_NE(t, nullptr) << name;
            std::vector<int64_t> shape(t->shape.dim.begin(), t->shape.dim.begin() + t->shape.rank);
            tensors.push_back({t->name, "BF16", shape, bf16_bytes(t->view())});
        }
        for (const char* x : kExperts) {
            auto t = (*f32)->tensor(blk(il, x));
            ASSERT_TRUE(t);
            ref_experts.push_back({blk(il, x), DType::BF16, t->shape, bf16_bytes(*t)});
        }
    }
    test::ScratchDir dir("gptoss_hf_bf16");
    copy_config(dir.path());
    test::write_safetensors_file(dir.path() / "model.safetensors", tensors);
    const std::string ref = test::temp_path("gptoss_f32_bf16_experts.gguf");
    write_reference_gguf(ref, ref_experts);
    auto hf = open_model_source(dir.str());
    ASSERT_TRUE(hf.ok()) << hf.message();
    EXPECT_EQ((*hf)->tensor(blk(0, "ffn_gate_exps.weight"))->dtype, DType::BF16);
    const auto got = logits_of(dir.str()), want = logits_of(ref);
    fs::remove(ref);
    ASSERT_EQ(got.size(), want.size());
    const double mr = test::max_rel(got, want);
    std::printf("[ gpt-oss  ] HF bf16 experts vs GGUF with the same bf16 experts: max_rel %.2e\n",
                mr);
    EXPECT_LT(mr, 1e-6);
}

TEST(GptOssHfExperts, BlocksWithoutScalesIsAnError) {
    auto st = SafetensorsFile::open(test::model_dir("gptoss") + "/model.safetensors");
    ASSERT_TRUE(st.ok());
    auto tensors = fixture_without_experts(**st);
    tensors.push_back({hf_experts(0, "gate_up_proj_blocks"),
                       "U8",
                       {8, 128, 4, 16},
                       std::vector<uint8_t>(8 * 128 * 4 * 16)});
    test::ScratchDir dir("gptoss_hf_noscales");
    copy_config(dir.path());
    test::write_safetensors_file(dir.path() / "model.safetensors", tensors);
    auto hf = open_model_source(dir.str());
    ASSERT_FALSE(hf.ok());
    EXPECT_NE(hf.message().find("gate_up_proj_scales"), std::string::npos) << hf.message();
}

}  // namespace
}  // namespace moe
