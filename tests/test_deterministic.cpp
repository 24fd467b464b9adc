// Batch invariance (SessionOptions::deterministic): a sequence's logits are bitwise the same when
// it is decoded alone and when it shares every forward pass with 1..15 other sequences (decode
// steps and prompt chunks mixed). Without the option the prompt GEMM (AVX-512) makes a row's
// result depend on how many rows its matrix or expert got.
#include <gtest/gtest.h>

#include <cstring>

#include "fixtures.h"
#include "kernels/dispatch.h"
#include "models/model.h"
#include "runtime/session.h"

namespace moe {
namespace {

std::string repo_model(const std::string& f) {
    return std::string(MOE_SOURCE_DIR) + "/models/" + f;
}

int32_t token_of(int seq, int i, int n_vocab) {
    return int32_t((seq * 131 + i * 37 + 11) % (n_vocab - 1) + 1);
}

constexpr int kPrompt = 6, kSteps = 10;  // sequence 0: a 6-token prompt chunk, then 10 decodes

// Logits of sequence 0, one forward pass per step: its own tokens only (n_others = 0) or with
// others in the same passes. Others start at different steps (prompt chunks of 1..9 tokens,
// then single decode tokens), so matrices and experts see a different row count every step.
std::vector<float> run(const Model& m, bool deterministic, int n_others, int isa = -1) {
    SessionOptions so;
    so.n_threads = 2, so.n_ctx = 64, so.n_seq = 1 + n_others, so.deterministic = deterministic;
    so.isa = isa;
    Session s(m, so);
    const int nv = m.config.n_vocab;
    std::vector<float> out;
    std::vector<int> fed(size_t(1 + n_others), 0);
    for (int step = 0; step <= kSteps; ++step) {
        Batch b;
        for (int o = 1; o <= n_others; ++o) {  // others first: sequence 0's rows move around
            if ((step + o) % 4 == 0 && o % 3 == 1) continue;  // idle this step
            const int n = fed[size_t(o)] == 0 ? 1 + (o * 5 + step) % 9 : 1;
            for (int i = 0; i < n && fed[size_t(o)] < 40; ++i, ++fed[size_t(o)])
                b.add(token_of(o, fed[size_t(o)], nv), fed[size_t(o)], o, i + 1 == n);
        }
        const int n0 = step == 0 ? kPrompt : 1;
        const int64_t first = b.n_outputs();
        for (int i = 0; i < n0; ++i, ++fed[0]) b.add(token_of(0, fed[0], nv), fed[0], 0, true);
        auto r = s.eval(b);
        EXPECT_TRUE(r.ok()) << r.message();
        if (!r.ok()) return {};
        out.insert(out.end(), r->begin() + first * nv, r->begin() + (first + n0) * nv);
    }
    return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class Deterministic : public testing::TestWithParam<std::string> {};

TEST_P(Deterministic, LogitsDoNotDependOnTheBatch) {
    const std::string path = GetParam().find('/') == std::string::npos
                                 ? test::fixtures_dir() + "/models/" + GetParam() + ".gguf"
                                 : GetParam();
    auto m = load_model(path);
    ASSERT_TRUE(m.ok()) << m.message();
    const auto alone = run(**m, true, 0);
    ASSERT_EQ(alone.size(), size_t((kPrompt + kSteps) * (*m)->config.n_vocab));
    for (int n_others : {1, 3, 7, 15}) {
        const auto shared = run(**m, true, n_others);
        EXPECT_TRUE(same_bits(alone, shared)) << path << " with " << n_others << " others";
    }
}

INSTANTIATE_TEST_SUITE_P(Files, Deterministic,
                         testing::Values("llama-f32", "llama-q4_k_m", "mixtral-f32", "mixtral-q8_0",
                                         "qwen2moe-f32", "qwen2moe-wide-q4_k_m", "qwen3moe-f32",
                                         "qwen3moe-wide-q4_k_m", "olmoe-f32", "olmoe-q4_0",
                                         "deepseek2-f32", "deepseek3-f32", "deepseek3-wide-q4_k_m",
                                         "gptoss-f32", "gptoss-wide-mxfp4_moe",
                                         "mixtral-wide-q4_k_m", "mixtral-wide-q6_k",
                                         "mixtral-wide-iq4_xs", repo_model("demo-moe.gguf")),
                         [](const testing::TestParamInfo<std::string>& i) {
                             std::string n = i.param.substr(i.param.find_last_of('/') + 1);
                             for (char& c : n)
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return n;
                         });

// The check above can fail: without the option the same runs differ wherever the prompt GEMM
// exists (AVX-512: it takes batches of 4+ rows, single rows take the dot kernels).
TEST(DeterministicOff, BatchChangesLogitsWhereTheGemmRuns) {
    auto m = load_model(test::gguf_path("mixtral-wide", "q4_k_m"));
    ASSERT_TRUE(m.ok()) << m.message();
    const auto alone = run(**m, false, 0);
    const auto shared = run(**m, false, 7);
    EXPECT_EQ(!same_bits(alone, shared), kern::isa_supported(kern::Isa::Avx512));
}

// The dot kernels' per-row sums must not depend on how many rows share a weight pass on any ISA
// (the scalar reference, AVX2, AVX-512): sessions pick the ISA themselves (SessionOptions::isa),
// in one process.
TEST(DeterministicIsa, EveryIsaIsBatchInvariantAndSessionsKeepTheirOwn) {
    std::vector<std::vector<float>> per_isa;
    for (const char* file : {"mixtral-wide-q4_k_m", "gptoss-wide-mxfp4_moe"}) {
        auto m = load_model(test::fixtures_dir() + "/models/" + file + ".gguf");
        ASSERT_TRUE(m.ok()) << m.message();
        for (kern::Isa isa : {kern::Isa::Scalar, kern::Isa::Avx2, kern::Isa::Avx512}) {
            if (!kern::isa_supported(isa)) continue;
            const auto alone = run(**m, true, 0, int(isa));
            EXPECT_TRUE(same_bits(alone, run(**m, true, 5, int(isa))))
                << file << " " << kern::isa_name(isa);
            per_isa.push_back(alone);
        }
    }
    // Different ISAs sum in different orders: the option reached the kernels.
    if (per_isa.size() >= 2) EXPECT_FALSE(same_bits(per_isa[0], per_isa[1]));
}

}  // namespace
}  // namespace moe
