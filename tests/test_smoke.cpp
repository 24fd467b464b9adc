#include <gtest/gtest.h>
#include "core/half.h"
TEST(Half, RoundTrip) { EXPECT_EQ(moe::fp16_to_f32(moe::f32_to_fp16(1.5f)), 1.5f); }
