// Reference quantizers: exact round trips of representable data, error bounds on random data,
// and bit-exact agreement with the upstream quantizer on the fixture files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "kernels/ref/quant_blocks.h"
#include "kernels/ref/quantize.h"

namespace {

using moe::DType;
using Bytes = std::vector<uint8_t>;

Bytes quantize(DType t, const std::vector<float>& x) {
    Bytes b(size_t(moe::dtype_row_bytes(t, int64_t(x.size()))), 0xAA);
    moe::ref::quantize_row_fn(t)(x.data(), b.data(), int64_t(x.size()));
    return b;
}

std::vector<float> dequantize(DType t, const Bytes& b, size_t n) {
    std::vector<float> y(n);
    moe::ops::dequantize_row(t, b.data(), y.data(), int64_t(n));
    return y;
}

// Deterministic roughly Gaussian data (sum of uniforms; no library distribution, whose output
// differs between standard libraries).
std::vector<float> gaussian_like(size_t n, uint32_t seed, float scale) {
    std::mt19937 rng(seed);
    std::vector<float> x(n);
    for (auto& v : x) {
        float s = 0;
        for (int k = 0; k < 4; ++k) s += float(rng() >> 8) * (1.0f / 16777216.0f) - 0.5f;
        v = s * scale;
    }
    return x;
}

double nmse(const std::vector<float>& got, const std::vector<float>& want) {
    double err = 0, ref = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        err += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        ref += double(want[i]) * want[i];
    }
    return err / ref;
}

}  // namespace

TEST(QuantQuantize, Dispatch) {
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_K})
        EXPECT_NE(moe::ref::quantize_row_fn(t), nullptr) << moe::dtype_name(t);
    EXPECT_EQ(moe::ref::quantize_row_fn(DType::Q4_K), nullptr);
    EXPECT_EQ(moe::ref::quantize_row_fn(DType::F32), nullptr);
}

// Data already on a block's grid quantizes to exactly that grid: the expected bytes are the
// hand-made blocks of test_quant_blocks.cpp.
TEST(QuantQuantize, Q4_0ExactGrid) {
    std::vector<float> x(32);
    for (int j = 0; j < 16; ++j) {
        x[j] = 0.5f * float(j - 8);
        x[j + 16] = 0.5f * float(7 - j);
    }
    const Bytes b = quantize(DType::Q4_0, x);
    EXPECT_EQ(moe::fp16_to_f32(uint16_t(b[0] | b[1] << 8)), 0.5f);  // d = -4 / -8
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b[2 + j], uint8_t(j | ((15 - j) << 4))) << j;
    EXPECT_EQ(dequantize(DType::Q4_0, b, 32), x);
}

TEST(QuantQuantize, Q4_1ExactGrid) {
    std::vector<float> x(32);
    for (int j = 0; j < 16; ++j) {
        x[j] = 0.25f * float(j) - 1.0f;
        x[j + 16] = 0.25f * float(15 - j) - 1.0f;
    }
    const Bytes b = quantize(DType::Q4_1, x);
    EXPECT_EQ(moe::fp16_to_f32(uint16_t(b[0] | b[1] << 8)), 0.25f);
    EXPECT_EQ(moe::fp16_to_f32(uint16_t(b[2] | b[3] << 8)), -1.0f);
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b[4 + j], uint8_t(j | ((15 - j) << 4))) << j;
    EXPECT_EQ(dequantize(DType::Q4_1, b, 32), x);
}

TEST(QuantQuantize, Q5_0ExactGrid) {
    // Levels q (0..31) with d = 2: x = 2 (q - 16); q = 0 gives the absmax -32, so d = -32 / -16.
    std::vector<int> q(32, 0);
    q[0] = 28, q[16] = 3, q[17] = 31, q[5] = 16, q[15] = 1, q[31] = 24, q[9] = 17;
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = 2.0f * float(q[j] - 16);
    const Bytes b = quantize(DType::Q5_0, x);
    EXPECT_EQ(moe::fp16_to_f32(uint16_t(b[0] | b[1] << 8)), 2.0f);
    const uint32_t qh =
        uint32_t(b[2]) | uint32_t(b[3]) << 8 | uint32_t(b[4]) << 16 | uint32_t(b[5]) << 24;
    EXPECT_EQ(qh, (1u << 0) | (1u << 5) | (1u << 9) | (1u << 17) | (1u << 31));
    EXPECT_EQ(b[6 + 0], 0x3C);
    EXPECT_EQ(b[6 + 1], 0xF0);
    EXPECT_EQ(b[6 + 15], 0x81);
    EXPECT_EQ(dequantize(DType::Q5_0, b, 32), x);
}

TEST(QuantQuantize, Q5_1ExactGrid) {
    std::vector<int> q(32, 0);
    q[2] = 31, q[18] = 23, q[3] = 1, q[19] = 2;
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = 0.5f * float(q[j]) - 3.0f;
    const Bytes b = quantize(DType::Q5_1, x);
    EXPECT_EQ(moe::fp16_to_f32(uint16_t(b[0] | b[1] << 8)), 0.5f);
    EXPECT_EQ(moe::fp16_to_f32(uint16_t(b[2] | b[3] << 8)), -3.0f);
    EXPECT_EQ(b[4], 0x04);  // qh bit 2
    EXPECT_EQ(b[6], 0x04);  // qh bit 18
    EXPECT_EQ(b[5], 0x00);
    EXPECT_EQ(b[7], 0x00);
    EXPECT_EQ(b[8 + 2], 0x7F);
    EXPECT_EQ(b[8 + 3], 0x21);
    EXPECT_EQ(dequantize(DType::Q5_1, b, 32), x);
}

TEST(QuantQuantize, Q8_0ExactGrid) {
    std::vector<float> x(64);
    for (int j = 0; j < 32; ++j) x[j] = 0.5f * float((j * 37) % 255 - 127);  // includes -63.5
    x[7] = 63.5f;
    for (int j = 32; j < 64; ++j) x[j] = 0.0f;  // all-zero block: d = 0, q = 0
    const Bytes b = quantize(DType::Q8_0, x);
    EXPECT_EQ(moe::fp16_to_f32(uint16_t(b[0] | b[1] << 8)), 0.5f);
    EXPECT_EQ(int8_t(b[2 + 7]), 127);
    EXPECT_EQ(int8_t(b[2 + 0]), -127);
    for (int k = 34; k < 68; ++k) EXPECT_EQ(b[size_t(k)], 0) << k;
    EXPECT_EQ(dequantize(DType::Q8_0, b, 64), x);
}

TEST(QuantQuantize, Q8_K) {
    // x = (i % 255 - 127) / 2: the first absmax is x[0] = -63.5, so iscale = 2 and d = 0.5.
    std::vector<float> x(512);
    for (int i = 0; i < 256; ++i) x[i] = 0.5f * float(i % 255 - 127);
    for (int i = 256; i < 512; ++i) x[i] = 0.0f;
    const Bytes b = quantize(DType::Q8_K, x);
    ASSERT_EQ(b.size(), 584u);
    EXPECT_EQ(moe::f32_from_bits(uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 |
                                 uint32_t(b[3]) << 24),
              0.5f);
    for (int i = 0; i < 256; ++i) EXPECT_EQ(int8_t(b[4 + i]), i % 255 - 127) << i;
    for (int s = 0; s < 16; ++s) {
        int sum = 0;
        for (int j = 0; j < 16; ++j) sum += (16 * s + j) % 255 - 127;
        EXPECT_EQ(int16_t(b[260 + 2 * s] | b[261 + 2 * s] << 8), sum) << s;
    }
    EXPECT_EQ(int16_t(b[260] | b[261] << 8), -1912);  // sum of -127..-112
    for (size_t k = 292; k < 584; ++k) EXPECT_EQ(b[k], 0) << k;
    std::vector<float> y(512);
    moe::ref::dequantize_block_q8_k(b.data(), y.data());
    moe::ref::dequantize_block_q8_k(b.data() + 292, y.data() + 256);
    EXPECT_EQ(y, x);
}

// Random data: every element is within one quantization step of the input (half a step away
// from the clamped extreme) and the NMSE is at the level expected for the bit width.
TEST(QuantQuantize, RandomRoundTrip) {
    const auto x = gaussian_like(4096, 42, 2.0f);
    struct Case {
        DType t;
        double max_nmse;
    };
    for (const Case c : {Case{DType::Q8_0, 5e-5}, Case{DType::Q5_0, 4e-3}, Case{DType::Q5_1, 3e-3},
                         Case{DType::Q4_0, 1.5e-2}, Case{DType::Q4_1, 1.2e-2}}) {
        const auto y = dequantize(c.t, quantize(c.t, x), x.size());
        const double e = nmse(y, x);
        EXPECT_LT(e, c.max_nmse) << moe::dtype_name(c.t);
        EXPECT_GT(e, c.max_nmse / 20) << moe::dtype_name(c.t) << ": suspiciously exact";
        // Per block: |error| <= one step d (half a step, except at the clamped extreme of the
        // symmetric formats), allowing for the f16 rounding of the stored scale.
        for (size_t i = 0; i < x.size(); i += 32) {
            float lo = x[i], hi = x[i];
            for (size_t j = i; j < i + 32; ++j) {
                lo = std::min(lo, x[j]);
                hi = std::max(hi, x[j]);
            }
            const float amax = std::max(-lo, hi);
            float step = 0;
            switch (c.t) {
                case DType::Q8_0:
                    step = amax / 127;
                    break;
                case DType::Q4_0:
                    step = amax / 8;
                    break;
                case DType::Q5_0:
                    step = amax / 16;
                    break;
                case DType::Q4_1:
                    step = (hi - lo) / 15;
                    break;
                default:
                    step = (hi - lo) / 31;
                    break;
            }
            for (size_t j = i; j < i + 32; ++j)
                ASSERT_LE(std::fabs(y[j] - x[j]), step * 1.01f)
                    << moe::dtype_name(c.t) << " element " << j;
        }
    }
    std::vector<uint8_t> qk(size_t(moe::dtype_row_bytes(DType::Q8_K, 4096)));
    moe::ref::quantize_row_q8_k(x.data(), qk.data(), 4096);
    std::vector<float> yk(4096);
    for (int i = 0; i < 16; ++i)
        moe::ref::dequantize_block_q8_k(qk.data() + 292 * i, yk.data() + 256 * i);
    EXPECT_LT(nmse(yk, x), 1e-4);
}

// The fixture q8_0 / q4_0 / q4_k_m files were written by the upstream quantizer from the f32
// files (no importance matrix), whose Q8_0, Q4_0, Q5_0 and Q5_1 paths are the plain reference
// quantizers: re-quantizing the f32 tensor must give the same bytes.
TEST(QuantQuantize, BitExactWithUpstreamFixtures) {
    const std::string dir = std::string(MOE_FIXTURES_DIR) + "/models/";
    if (!std::filesystem::exists(dir + "mixtral-f32.gguf")) GTEST_SKIP() << "no fixtures";
    int checked[4] = {0, 0, 0, 0};
    const DType types[4] = {DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q5_1};
    for (const char* model :
         {"llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe", "gptoss", "deepseek3"}) {
        auto rf = moe::gguf::File::open(dir + model + "-f32.gguf");
        ASSERT_TRUE(rf.ok()) << rf.message();
        for (const char* q : {"q8_0", "q4_0", "q4_k_m"}) {
            const std::string path = dir + model + "-" + q + ".gguf";
            if (!std::filesystem::exists(path)) continue;
            auto qf = moe::gguf::File::open(path);
            ASSERT_TRUE(qf.ok()) << qf.message();
            for (const auto& ti : (*qf)->tensors()) {
                int k = 0;
                while (k < 4 && types[k] != ti.dtype) ++k;
                if (k == 4) continue;
                const auto* ri = (*rf)->find_tensor(ti.name);
                ASSERT_NE(ri, nullptr) << ti.name;
                ASSERT_EQ(ri->dtype, DType::F32) << ti.name;
                const moe::TensorView qv = (*qf)->view(ti), rv = (*rf)->view(*ri);
                const int64_t n = qv.shape.last();
                Bytes mine(size_t(qv.row_bytes()));
                int64_t bad_rows = 0;
                for (int64_t r = 0; r < qv.shape.rows(); ++r) {
                    moe::ref::quantize_row_fn(ti.dtype)(reinterpret_cast<const float*>(rv.row(r)),
                                                        mine.data(), n);
                    bad_rows += std::memcmp(mine.data(), qv.row(r), mine.size()) != 0;
                }
                EXPECT_EQ(bad_rows, 0)
                    << path << ": " << ti.name << " (" << moe::dtype_name(ti.dtype) << ")";
                ++checked[k];
            }
        }
    }
    for (int k = 0; k < 4; ++k) EXPECT_GT(checked[k], 0) << moe::dtype_name(types[k]);
    std::printf("  bit-exact tensors: q8_0 %d, q4_0 %d, q5_0 %d, q5_1 %d\n", checked[0], checked[1],
                checked[2], checked[3]);
}
