// f32 <-> IEEE binary16 against values worked out from the format (1 sign, 5 exponent bits with
// bias 15, 10 mantissa bits; round to nearest, ties to even), not against our own output.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/half.h"

namespace moe {
namespace {

struct ToHalf {
    float value;
    uint16_t bits;
    const char* why;
};

const ToHalf kToHalf[] = {
    {0.0f, 0x0000, "zero"},
    {-0.0f, 0x8000, "negative zero keeps its sign"},
    {1.0f, 0x3C00, "one"},
    {-2.0f, 0xC000, "minus two"},
    {1.5f, 0x3E00, "exact"},
    {0.1f, 0x2E66, "0.1 rounds to 0.0999755859375"},
    {65504.0f, 0x7BFF, "largest finite"},
    {65519.0f, 0x7BFF, "below the halfway point to 65536 stays finite"},
    {65520.0f, 0x7C00, "halfway above the largest finite rounds (to even) to infinity"},
    {1e6f, 0x7C00, "overflow"},
    {-1e6f, 0xFC00, "negative overflow"},
    {1.0f + 0x1p-11f, 0x3C00, "tie between 1 and 1+2^-10 goes to the even 1"},
    {1.0f + 3 * 0x1p-11f, 0x3C02, "tie between odd and even mantissas goes to the even one"},
    {1.0f + 0x1p-11f + 0x1p-20f, 0x3C01, "just above the tie rounds up"},
    {1.0f - 0x1p-12f, 0x3C00, "tie below 1 carries into the exponent"},
    {0x1p-14f, 0x0400, "smallest normal"},
    {0x1p-24f, 0x0001, "smallest subnormal"},
    {1023 * 0x1p-24f, 0x03FF, "largest subnormal"},
    {0x1p-25f, 0x0000, "half the smallest subnormal ties to even zero"},
    {1.5f * 0x1p-24f, 0x0002, "subnormal tie goes to the even mantissa"},
    {1.25f * 0x1p-24f, 0x0001, "subnormal below the tie rounds down"},
    {0x1p-26f, 0x0000, "underflow"},
    {-0x1p-24f, 0x8001, "negative subnormal"},
    {std::numeric_limits<float>::infinity(), 0x7C00, "infinity"},
    {-std::numeric_limits<float>::infinity(), 0xFC00, "negative infinity"},
};

TEST(Half, F32ToF16Table) {
    for (const auto& c : kToHalf)
        EXPECT_EQ(f32_to_fp16(c.value), c.bits) << c.why << " (" << c.value << ")";
}

TEST(Half, F16ToF32Table) {
    const struct {
        uint16_t bits;
        float value;
    } table[] = {
        {0x3C00, 1.0f},
        {0xC000, -2.0f},
        {0x7BFF, 65504.0f},
        {0x0400, 0x1p-14f},
        {0x0001, 0x1p-24f},
        {0x03FF, 1023 * 0x1p-24f},
        {0x8001, -0x1p-24f},
        {0x2E66, 0.0999755859375f},
        {0x7C00, std::numeric_limits<float>::infinity()},
        {0xFC00, -std::numeric_limits<float>::infinity()},
    };
    for (const auto& c : table) EXPECT_EQ(fp16_to_f32(c.bits), c.value) << std::hex << c.bits;
    EXPECT_TRUE(std::signbit(fp16_to_f32(0x8000)));
    EXPECT_EQ(fp16_to_f32(0x8000), 0.0f);
}

TEST(Half, NanStaysNan) {
    const uint16_t quiet = f32_to_fp16(std::numeric_limits<float>::quiet_NaN());
    EXPECT_EQ(quiet & 0x7C00, 0x7C00);
    EXPECT_NE(quiet & 0x03FF, 0);
    // A payload only in the low f32 mantissa bits (lost by the shift) must not turn into infinity.
    const uint16_t low_payload = f32_to_fp16(f32_from_bits(0x7F800001u));
    EXPECT_EQ(low_payload & 0x7C00, 0x7C00);
    EXPECT_NE(low_payload & 0x03FF, 0);
    EXPECT_TRUE(std::isnan(fp16_to_f32(0x7E00)));
    EXPECT_TRUE(std::isnan(fp16_to_f32(0xFC01)));
}

// Every finite half converts to f32 and back unchanged (f32 holds every half exactly).
TEST(Half, EveryFiniteHalfRoundTrips) {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7C00) == 0x7C00) continue;  // inf / nan
        ASSERT_EQ(f32_to_fp16(fp16_to_f32(uint16_t(h))), h) << std::hex << h;
    }
}

}  // namespace
}  // namespace moe
