// Reference block dequantizers: hand-built blocks with known values, then the fixture GGUF
// files (quantized by the upstream tool) against their f32 twins.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/half.h"
#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "kernels/ref/quant_blocks.h"

namespace {

using moe::DType;
using Bytes = std::vector<uint8_t>;

void put_f16(Bytes& b, size_t off, float v) {
    const uint16_t h = moe::f32_to_fp16(v);
    ASSERT_EQ(moe::fp16_to_f32(h), v) << "test value not representable in f16";
    b[off] = uint8_t(h);
    b[off + 1] = uint8_t(h >> 8);
}

std::vector<float> dequant(DType t, const Bytes& b) {
    const auto& tr = moe::traits(t);
    EXPECT_EQ(int(b.size()), tr.block_bytes);
    std::vector<float> y(size_t(tr.block_elems), NAN);
    moe::ops::dequantize_row(t, b.data(), y.data(), tr.block_elems);
    return y;
}

void expect_all_eq(const std::vector<float>& got, const std::vector<float>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "element " << i;
}

// IQ4_NL levels and FP4 E2M1 values, copied from the format specifications.
constexpr float kIq4[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                            1,    13,   25,  38,  53,  69,  89,  113};
constexpr float kFp4[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

}  // namespace

TEST(QuantBlocks, Dispatch) {
    for (DType t :
         {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q4_K,
          DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS, DType::MXFP4}) {
        EXPECT_NE(moe::ref::dequantize_block_fn(t), nullptr) << moe::dtype_name(t);
        EXPECT_TRUE(moe::ops::weight_type_supported(t)) << moe::dtype_name(t);
    }
    EXPECT_EQ(moe::ref::dequantize_block_fn(DType::IQ2_XXS), nullptr);
    EXPECT_EQ(moe::ref::dequantize_block_fn(DType::F32), nullptr);
}

TEST(QuantBlocks, Q4_0) {
    Bytes b(18, 0);
    put_f16(b, 0, 0.5f);
    for (int j = 0; j < 16; ++j) b[2 + j] = uint8_t(j | ((15 - j) << 4));
    const auto y = dequant(DType::Q4_0, b);
    // Low nibbles are elements 0..15, high nibbles 16..31; x = d * (q - 8).
    EXPECT_EQ(y[0], -4.0f);
    EXPECT_EQ(y[8], 0.0f);
    EXPECT_EQ(y[15], 3.5f);
    EXPECT_EQ(y[16], 3.5f);
    EXPECT_EQ(y[31], -4.0f);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], 0.5f * float(j - 8));
        EXPECT_EQ(y[j + 16], 0.5f * float(7 - j));
    }
}

TEST(QuantBlocks, Q4_1) {
    Bytes b(20, 0);
    put_f16(b, 0, 0.25f);
    put_f16(b, 2, -1.0f);
    for (int j = 0; j < 16; ++j) b[4 + j] = uint8_t(j | ((15 - j) << 4));
    const auto y = dequant(DType::Q4_1, b);
    EXPECT_EQ(y[0], -1.0f);
    EXPECT_EQ(y[15], 2.75f);
    EXPECT_EQ(y[16], 2.75f);
    EXPECT_EQ(y[20], 1.75f);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], 0.25f * float(j) - 1.0f);
        EXPECT_EQ(y[j + 16], 0.25f * float(15 - j) - 1.0f);
    }
}

TEST(QuantBlocks, Q5_0) {
    Bytes b(22, 0);
    put_f16(b, 0, 2.0f);
    // qh (little-endian u32): bit i is the fifth bit of element i.
    const uint32_t qh = (1u << 0) | (1u << 5) | (1u << 17) | (1u << 31);
    for (int k = 0; k < 4; ++k) b[2 + k] = uint8_t(qh >> (8 * k));
    b[6 + 0] = 0x3C;   // element 0: 12 | 16 = 28, element 16: 3
    b[6 + 1] = 0xF0;   // element 1: 0, element 17: 15 | 16 = 31
    b[6 + 15] = 0x81;  // element 15: 1, element 31: 8 | 16 = 24
    const auto y = dequant(DType::Q5_0, b);
    std::vector<float> want(32, 2.0f * -16);  // q = 0 everywhere else
    want[0] = 2.0f * (28 - 16);
    want[16] = 2.0f * (3 - 16);
    want[1] = 2.0f * (0 - 16);
    want[17] = 2.0f * (31 - 16);
    want[5] = 2.0f * (16 - 16);
    want[15] = 2.0f * (1 - 16);
    want[31] = 2.0f * (24 - 16);
    expect_all_eq(y, want);
    EXPECT_EQ(y[17], 30.0f);
}

TEST(QuantBlocks, Q5_1) {
    Bytes b(24, 0);
    put_f16(b, 0, 0.5f);
    put_f16(b, 2, -3.0f);
    const uint32_t qh = (1u << 2) | (1u << 18);
    for (int k = 0; k < 4; ++k) b[4 + k] = uint8_t(qh >> (8 * k));
    b[8 + 2] = 0x7F;  // element 2: 15 | 16 = 31, element 18: 7 | 16 = 23
    b[8 + 3] = 0x21;  // element 3: 1, element 19: 2
    const auto y = dequant(DType::Q5_1, b);
    std::vector<float> want(32, -3.0f);
    want[2] = 0.5f * 31 - 3.0f;
    want[18] = 0.5f * 23 - 3.0f;
    want[3] = 0.5f * 1 - 3.0f;
    want[19] = 0.5f * 2 - 3.0f;
    expect_all_eq(y, want);
    EXPECT_EQ(y[2], 12.5f);
}

TEST(QuantBlocks, Q2_K) {
    Bytes b(84, 0);
    // scales[s]: low nibble scale = s + 1, high nibble min = 1.
    for (int s = 0; s < 16; ++s) b[s] = uint8_t(((s + 1) & 15) | (1 << 4));
    // qs[33] = 2-bit values 0,1,2,3 at shifts 0,2,4,6: elements 128 + 32j + 1.
    b[16 + 33] = 0b11100100;
    put_f16(b, 80, 1.0f);
    put_f16(b, 82, 0.5f);
    const auto y = dequant(DType::Q2_K, b);
    std::vector<float> want(256, -0.5f);  // q = 0: x = -dmin * min
    want[129] = 9.0f * 0 - 0.5f;          // sub-block 8, q = 0
    want[161] = 11.0f * 1 - 0.5f;         // sub-block 10, q = 1
    want[193] = 13.0f * 2 - 0.5f;         // sub-block 12, q = 2
    want[225] = 15.0f * 3 - 0.5f;         // sub-block 14, q = 3
    expect_all_eq(y, want);
    EXPECT_EQ(y[225], 44.5f);
}

TEST(QuantBlocks, Q3_K) {
    Bytes b(110, 0);
    uint8_t* hmask = b.data();
    uint8_t* qs = b.data() + 32;
    uint8_t* sc = b.data() + 96;
    put_f16(b, 108, 1.0f);
    for (int l = 0; l < 32; ++l) hmask[l] = 0xFF;  // high bit set: no -4 offset
    // Every raw scale 0 -> scale -32, except:
    //   sub-block 10: raw 37 (low4 5 in sc[2] high nibble, high2 2 in sc[10] bits 4-5) -> 5
    //   sub-block 5:  raw 55 (low4 7 in sc[5] low nibble, high2 3 in sc[9] bits 2-3) -> 23
    sc[2] = 0x50;
    sc[10] = 0x20;
    sc[5] = 0x07;
    sc[9] = 0x0C;
    // Element 0: low 0, high bit cleared -> q = -4 with scale -32.
    hmask[0] = 0xFE;
    // Element 162 = 128 + 32 * 1 + 2: low 1 (qs[34] bits 2-3), high bit 5 cleared -> q = -3.
    qs[34] = 0b0100;
    hmask[2] = uint8_t(0xFF & ~(1 << 5));
    // Element 80 = 32 * 2 + 16: low 3 (qs[16] bits 4-5), high bit set -> q = 3.
    qs[16] = 0b110000;
    const auto y = dequant(DType::Q3_K, b);
    std::vector<float> want(256, 0.0f);
    want[0] = 128.0f;
    want[162] = -15.0f;
    want[80] = 69.0f;
    expect_all_eq(y, want);
}

namespace {
// Q4_K/Q5_K scale bytes used below: (scale, min) = (3, 2) for sub-block 0, (42, 19) for
// sub-block 5, zero elsewhere.
void put_k4_scales(uint8_t* s) {
    s[0] = 3;     // scale 0
    s[4] = 2;     // min 0
    s[1] = 0x80;  // bits 6-7: high2 of scale 5 (42 = 0b10'1010)
    s[5] = 0x40;  // bits 6-7: high2 of min 5 (19 = 0b01'0011)
    s[9] = 0x3A;  // low4 of scale 5 (0xA) and of min 5 (0x3)
}
}  // namespace

TEST(QuantBlocks, Q4_K) {
    Bytes b(144, 0);
    put_f16(b, 0, 1.0f);
    put_f16(b, 2, 0.5f);
    put_k4_scales(b.data() + 4);
    uint8_t* qs = b.data() + 16;
    // Sub-block 0 = low nibbles of qs[0..31]; sub-block 5 = high nibbles of qs[64..95].
    for (int l = 0; l < 32; ++l) {
        qs[l] = uint8_t(l % 16);
        qs[64 + l] = uint8_t((15 - l % 16) << 4);
    }
    const auto y = dequant(DType::Q4_K, b);
    std::vector<float> want(256, 0.0f);
    for (int l = 0; l < 32; ++l) {
        want[l] = 3.0f * float(l % 16) - 1.0f;
        want[160 + l] = 42.0f * float(15 - l % 16) - 9.5f;
    }
    expect_all_eq(y, want);
    EXPECT_EQ(y[175], -9.5f);
    EXPECT_EQ(y[160], 620.5f);
}

TEST(QuantBlocks, Q5_K) {
    Bytes b(176, 0);
    put_f16(b, 0, 1.0f);
    put_f16(b, 2, 0.5f);
    put_k4_scales(b.data() + 4);
    uint8_t* qh = b.data() + 16;
    uint8_t* qs = b.data() + 48;
    for (int l = 0; l < 32; ++l) {
        qs[l] = uint8_t(l % 16);
        qs[64 + l] = uint8_t((15 - l % 16) << 4);
        if (l % 2 == 0) qh[l] |= 1;  // fifth bit of element l (sub-block 0)
    }
    qh[7] |= 1 << 5;  // fifth bit of element 160 + 7 (sub-block 5)
    qh[9] |= 1 << 3;  // fifth bit of element 96 + 9 (sub-block 3: scale 0 -> stays 0)
    const auto y = dequant(DType::Q5_K, b);
    std::vector<float> want(256, 0.0f);
    for (int l = 0; l < 32; ++l) {
        want[l] = 3.0f * float(l % 16 + (l % 2 == 0 ? 16 : 0)) - 1.0f;
        want[160 + l] = 42.0f * float(15 - l % 16 + (l == 7 ? 16 : 0)) - 9.5f;
    }
    expect_all_eq(y, want);
    EXPECT_EQ(y[2], 53.0f);
    EXPECT_EQ(y[167], 998.5f);
}

TEST(QuantBlocks, Q6_K) {
    Bytes b(210, 0);
    uint8_t* ql = b.data();
    uint8_t* qh = b.data() + 128;
    auto* sc = reinterpret_cast<int8_t*>(b.data() + 192);
    put_f16(b, 208, 0.5f);
    for (int s = 0; s < 16; ++s) sc[s] = int8_t(s - 8);
    // Element 200 = 128 + 32 * 2 + 8: ql[64 + 8] high nibble 5, qh[32 + 8] bits 4-5 = 2 -> q = 5.
    ql[72] = 0x50;
    qh[40] = 0b100000;
    // Element 45 = 32 * 1 + 13: ql[32 + 13] low nibble 15, qh[13] bits 2-3 = 3 -> q = 31.
    ql[45] = 0x0F;
    qh[13] = 0b1100;
    const auto y = dequant(DType::Q6_K, b);
    std::vector<float> want(256);
    for (int i = 0; i < 256; ++i) want[i] = 0.5f * float(i / 16 - 8) * -32.0f;  // q = -32
    want[200] = 10.0f;
    want[45] = -93.0f;
    expect_all_eq(y, want);
    EXPECT_EQ(y[0], 128.0f);
    EXPECT_EQ(y[255], -112.0f);
}

TEST(QuantBlocks, Q8_K) {
    Bytes b(292, 0);
    const float d = 0.125f;
    const uint32_t bits = moe::bits_from_f32(d);
    for (int k = 0; k < 4; ++k) b[k] = uint8_t(bits >> (8 * k));
    for (int i = 0; i < 256; ++i) b[4 + i] = uint8_t(int8_t(i - 128));
    std::vector<float> y(256);
    moe::ref::dequantize_block_q8_k(b.data(), y.data());
    EXPECT_EQ(y[0], -16.0f);
    EXPECT_EQ(y[128], 0.0f);
    EXPECT_EQ(y[255], 15.875f);
}

TEST(QuantBlocks, IQ4_NL) {
    Bytes b(18, 0);
    put_f16(b, 0, 2.0f);
    for (int j = 0; j < 16; ++j) b[2 + j] = uint8_t(j | ((15 - j) << 4));
    const auto y = dequant(DType::IQ4_NL, b);
    EXPECT_EQ(y[0], -254.0f);
    EXPECT_EQ(y[8], 2.0f);
    EXPECT_EQ(y[16], 226.0f);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], 2.0f * kIq4[j]);
        EXPECT_EQ(y[j + 16], 2.0f * kIq4[15 - j]);
    }
}

TEST(QuantBlocks, IQ4_XS) {
    Bytes b(136, 0);
    put_f16(b, 0, 0.5f);
    // 6-bit scales ls: sub-block 0: 33, 3: 28, 7: 63, others 0 (-> ls - 32 = -32).
    const uint16_t scales_h = (2 << 0) | (1 << 6) | (3 << 14);
    b[2] = uint8_t(scales_h);
    b[3] = uint8_t(scales_h >> 8);
    b[4 + 0] = 0x01;  // low4 of sub-blocks 0, 1
    b[4 + 1] = 0xC0;  // low4 of sub-blocks 2, 3
    b[4 + 3] = 0xF0;  // low4 of sub-blocks 6, 7
    for (int s = 0; s < 8; ++s)
        for (int j = 0; j < 16; ++j) b[8 + 16 * s + j] = uint8_t(j | ((15 - j) << 4));
    const auto y = dequant(DType::IQ4_XS, b);
    const float dl[8] = {0.5f, -16, -16, -2, -16, -16, -16, 15.5f};
    for (int s = 0; s < 8; ++s) {
        for (int j = 0; j < 16; ++j) {
            EXPECT_EQ(y[32 * s + j], dl[s] * kIq4[j]) << s << " " << j;
            EXPECT_EQ(y[32 * s + 16 + j], dl[s] * kIq4[15 - j]) << s << " " << j;
        }
    }
    EXPECT_EQ(y[0], -63.5f);
    EXPECT_EQ(y[96], 254.0f);
    EXPECT_EQ(y[255], -1968.5f);
}

TEST(QuantBlocks, E8M0Scale) {
    // The helper returns 2^(e - 128): half the E8M0 scale, pairing with the doubled FP4 table.
    EXPECT_EQ(moe::ref::e8m0_to_f32_half(127), 0.5f);
    EXPECT_EQ(moe::ref::e8m0_to_f32_half(128), 1.0f);
    EXPECT_EQ(moe::ref::e8m0_to_f32_half(131), 8.0f);
    EXPECT_EQ(moe::ref::e8m0_to_f32_half(2), std::ldexp(1.0f, -126));
    EXPECT_EQ(moe::ref::e8m0_to_f32_half(1), std::ldexp(1.0f, -127));
    EXPECT_EQ(moe::ref::e8m0_to_f32_half(0), std::ldexp(1.0f, -128));
    EXPECT_EQ(moe::ref::e8m0_to_f32_half(254), std::ldexp(1.0f, 126));
}

TEST(QuantBlocks, MXFP4) {
    Bytes b(17, 0);
    for (int j = 0; j < 16; ++j) b[1 + j] = uint8_t(j | ((15 - j) << 4));
    b[0] = 127;  // E8M0 2^0: values are the plain FP4 E2M1 values
    auto y = dequant(DType::MXFP4, b);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], kFp4[j]);
        EXPECT_EQ(y[j + 16], kFp4[15 - j]);
    }
    EXPECT_EQ(y[7], 6.0f);
    EXPECT_EQ(y[16], -6.0f);
    b[0] = 125;  // 2^-2
    y = dequant(DType::MXFP4, b);
    EXPECT_EQ(y[7], 1.5f);
    EXPECT_EQ(y[13], -0.75f);
    EXPECT_EQ(y[21], -0.25f);  // element 16 + 5: high nibble of byte 5 is 10 -> -1
}

// ---------------------------------------------------------------------------------------------
// Fixture files: upstream-quantized tensors against an independent reference of the same weights.

namespace {

std::string fixture(const std::string& name) {
    return std::string(MOE_FIXTURES_DIR) + "/models/" + name;
}

std::vector<float> dequant_tensor(const moe::gguf::File& f, const moe::gguf::TensorInfo& info) {
    const moe::TensorView v = f.view(info);
    const int64_t n = v.shape.last(), rows = v.shape.rows();
    std::vector<float> out(size_t(rows * n));
    for (int64_t r = 0; r < rows; ++r)
        moe::ops::dequantize_row(v.dtype, v.row(r), out.data() + r * n, n);
    return out;
}

// Per-tensor bound on normalized MSE sum((q - ref)^2) / sum(ref^2). For a uniform grid of step
// s the error variance is s^2 / 12; with b bits over a block range of ~±2.5 sigma that is
// roughly (5 / 2^b)^2 / 12 of the variance: ~2e-2 at 4 bits, ~5e-3 at 5, ~1e-3 at 6 (K-quants
// and non-linear grids do better). Bounds are ~2-3x the worst tensor measured on the fixtures
// (noted after each) so a layout bug, which costs NMSE ~1e-1 or more, cannot pass.
double nmse_bound(DType t) {
    switch (t) {
        case DType::F16:
            return 1e-6;  // 4.5e-8
        case DType::BF16:
            return 1e-5;  // 2.9e-6
        case DType::Q8_0:
            return 1e-4;  // 3.1e-5
        case DType::Q6_K:
            return 1e-3;  // 3.5e-4
        case DType::Q5_0:
        case DType::Q5_1:
            return 5e-3;  // 1.9e-3, 1.5e-3
        case DType::Q5_K:
            return 4e-3;  // 1.3e-3
        case DType::Q4_0:
        case DType::Q4_1:
            return 2e-2;  // 7.6e-3, 6.2e-3
        case DType::Q4_K:
            return 1.5e-2;  // 5.1e-3
        case DType::IQ4_NL:
        case DType::IQ4_XS:
            return 1.5e-2;  // 5.9e-3, 5.9e-3
        case DType::MXFP4:
            return 3e-2;  // 1.4e-2
        case DType::Q3_K:
            return 6e-2;  // 2.3e-2
        case DType::Q2_K:
            return 2e-1;  // 8.8e-2
        default:
            return 0.0;
    }
}

struct Acc {
    double err = 0, ref = 0;
    int tensors = 0;
    double worst = 0;
};

// Compares every quantized tensor of `quant` against the same-named tensor of `reference`,
// accumulating per-type NMSE into acc. Returns the number of tensors compared.
int compare_files(const std::string& quant, const std::string& reference,
                  std::map<DType, Acc>& acc) {
    auto qf = moe::gguf::File::open(quant);
    auto rf = moe::gguf::File::open(reference);
    EXPECT_TRUE(qf.ok()) << quant << ": " << (qf.ok() ? "" : qf.message());
    EXPECT_TRUE(rf.ok()) << reference << ": " << (rf.ok() ? "" : rf.message());
    if (!qf.ok() || !rf.ok()) return 0;
    int compared = 0;
    for (const auto& qi : (*qf)->tensors()) {
        if (qi.dtype == DType::F32) continue;
        const auto* ri = (*rf)->find_tensor(qi.name);
        EXPECT_NE(ri, nullptr) << quant << ": " << qi.name << " has no reference";
        if (!ri) continue;
        EXPECT_EQ(qi.shape, ri->shape) << qi.name;
        if (!(qi.shape == ri->shape)) continue;
        EXPECT_TRUE(moe::ops::weight_type_supported(qi.dtype)) << moe::dtype_name(qi.dtype);
        if (!moe::ops::weight_type_supported(qi.dtype)) continue;
        const auto got = dequant_tensor(**qf, qi);
        const auto want = dequant_tensor(**rf, *ri);
        double err = 0, ref = 0;
        for (size_t i = 0; i < got.size(); ++i) {
            const double dlt = double(got[i]) - double(want[i]);
            err += dlt * dlt;
            ref += double(want[i]) * double(want[i]);
        }
        const double nmse = ref > 0 ? err / ref : err;
        EXPECT_LT(nmse, nmse_bound(qi.dtype))
            << quant << ": " << qi.name << " (" << moe::dtype_name(qi.dtype) << ")";
        auto& a = acc[qi.dtype];
        a.err += err;
        a.ref += ref;
        a.worst = std::max(a.worst, nmse);
        ++a.tensors;
        ++compared;
    }
    return compared;
}

void print_acc(const std::map<DType, Acc>& acc) {
    for (const auto& [t, a] : acc)
        std::printf("  %-7s tensors %4d  NMSE overall %.3e  worst tensor %.3e\n",
                    std::string(moe::dtype_name(t)).c_str(), a.tensors, a.err / a.ref, a.worst);
}

}  // namespace

// Small (128-wide) fixtures: every quantized file against the f32 conversion of the same model.
TEST(QuantFixtures, SmallModelsAgainstF32) {
    if (!std::filesystem::exists(fixture("mixtral-f32.gguf"))) GTEST_SKIP() << "no fixtures";
    std::map<DType, Acc> acc;
    for (const char* model :
         {"llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe", "gptoss", "deepseek3"}) {
        const std::string ref = fixture(std::string(model) + "-f32.gguf");
        for (const char* q : {"f16", "bf16", "q8_0", "q4_0", "q4_k_m", "mxfp4_moe"}) {
            const std::string path = fixture(std::string(model) + "-" + q + ".gguf");
            if (!std::filesystem::exists(path)) continue;
            EXPECT_GT(compare_files(path, ref, acc), 0) << path;
        }
    }
    print_acc(acc);
    // Every quantized type these fixtures contain (tensor_types.txt) was exercised.
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q6_K,
                    DType::MXFP4})
        EXPECT_GT(acc[t].tensors, 0) << moe::dtype_name(t);
}

// Wide (256-wide) fixtures have no f32 file; the q8_0 file of the same model (NMSE ~1e-5 to the
// true weights) serves as the reference for every other quantization of it.
TEST(QuantFixtures, WideModelsAgainstQ8_0) {
    if (!std::filesystem::exists(fixture("mixtral-wide-q8_0.gguf"))) GTEST_SKIP() << "no fixtures";
    std::map<DType, Acc> acc;
    for (const char* q : {"q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k", "q4_0", "q4_1", "q5_0",
                          "q5_1", "iq4_nl", "iq4_xs"}) {
        const std::string path = fixture(std::string("mixtral-wide-") + q + ".gguf");
        EXPECT_GT(compare_files(path, fixture("mixtral-wide-q8_0.gguf"), acc), 0) << path;
    }
    EXPECT_GT(
        compare_files(fixture("gptoss-wide-mxfp4_moe.gguf"), fixture("gptoss-wide-q8_0.gguf"), acc),
        0);
    print_acc(acc);
    for (DType t :
         {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q4_0, DType::Q4_1,
          DType::Q5_0, DType::Q5_1, DType::IQ4_NL, DType::IQ4_XS, DType::MXFP4})
        EXPECT_GT(acc[t].tensors, 0) << moe::dtype_name(t);
}

// Every tensor of every wide file (including those with no reference at all) dequantizes to
// finite values with an RMS in the range of the f32 weights of the small models.
TEST(QuantFixtures, WideModelsFiniteAndPlausible) {
    if (!std::filesystem::exists(fixture("mixtral-wide-q8_0.gguf"))) GTEST_SKIP() << "no fixtures";
    double lo = 1e30, hi = 0;
    for (const auto& entry : std::filesystem::directory_iterator(fixture(""))) {
        const std::string name = entry.path().filename().string();
        if (name.find("-wide-") == std::string::npos || entry.path().extension() != ".gguf")
            continue;
        auto f = moe::gguf::File::open(entry.path().string());
        ASSERT_TRUE(f.ok()) << name << ": " << f.message();
        for (const auto& ti : (*f)->tensors()) {
            if (!moe::traits(ti.dtype).quantized) continue;
            ASSERT_TRUE(moe::ops::weight_type_supported(ti.dtype)) << moe::dtype_name(ti.dtype);
            const auto y = dequant_tensor(**f, ti);
            double ss = 0;
            bool finite = true;
            for (float v : y) {
                finite = finite && std::isfinite(v);
                ss += double(v) * v;
            }
            const double rms = std::sqrt(ss / double(y.size()));
            EXPECT_TRUE(finite) << name << ": " << ti.name;
            EXPECT_GT(rms, 5e-3) << name << ": " << ti.name;
            EXPECT_LT(rms, 1.0) << name << ": " << ti.name;
            lo = std::min(lo, rms);
            hi = std::max(hi, rms);
        }
    }
    std::printf("  quantized tensor RMS range over wide files: [%.3e, %.3e]\n", lo, hi);
}
