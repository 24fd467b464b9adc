// GGUF reader: metadata types, views, and every kind of bad input giving a clear error.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fixtures.h"
#include "gguf/gguf.h"
#include "gguf_builder.h"
#include "models/model.h"

namespace moe {
namespace {

using test::GgufBuilder;

std::string tmp_path(const std::string& name) {
    return test::temp_path("test_" + name);
}

std::string open_error(const GgufBuilder& b, const std::string& name) {
    auto f = gguf::File::open(b.write(tmp_path(name)));
    return f.ok() ? std::string() : f.message();
}

GgufBuilder valid_builder() {
    GgufBuilder b;
    b.kv_str("general.architecture", "llama");
    b.kv_u32("llama.block_count", 1);
    b.kv_f32("some.float", 1.5f);
    b.tensor("a.weight", {4, 2}, 0, test::f32_bytes(8));
    b.tensor("b.weight", {32}, 8, std::vector<uint8_t>(34, 1));  // one Q8_0 block
    return b;
}

TEST(Gguf, ReadsMetadataAndTensorViews) {
    auto f = gguf::File::open(valid_builder().write(tmp_path("valid.gguf")));
    ASSERT_TRUE(f.ok()) << f.message();
    EXPECT_EQ((*f)->get_string("general.architecture"), "llama");
    EXPECT_EQ((*f)->get_int("llama.block_count"), 1);
    EXPECT_DOUBLE_EQ(*(*f)->get_float("some.float"), 1.5);
    const auto* a = (*f)->find_tensor("a.weight");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->shape, (Shape{2, 4}));  // outermost first
    const auto v = (*f)->view(*a);
    EXPECT_EQ(static_cast<const float*>(v.data)[7], 0.5f);
    EXPECT_EQ((*f)->find_tensor("b.weight")->nbytes, 34u);
}

TEST(Gguf, NestedArraysAndAllScalarTypes) {
    GgufBuilder b;
    // array of 2 arrays of u8 [1,2] and [3]
    std::vector<uint8_t> v = {4, 0, 0, 0};               // elem type u8? no: ARRAY (9)
    v = {9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,             // ARRAY of 2 ARRAYs
         0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2,       // u8 x2
         0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3};         // u8 x1
    b.kv_raw("nested", 9, v);
    b.kv_raw("i8", 1, {0xff});
    b.kv_raw("i16", 3, {0xfe, 0xff});
    b.kv_raw("u64", 10, {1, 0, 0, 0, 0, 0, 0, 0});
    b.kv_raw("f64", 12, {0, 0, 0, 0, 0, 0, 0xf0, 0x3f});
    b.kv_raw("bool", 7, {1});
    auto f = gguf::File::open(b.write(tmp_path("nested.gguf")));
    ASSERT_TRUE(f.ok()) << f.message();
    const auto* arr = (*f)->get_array("nested");
    ASSERT_NE(arr, nullptr);
    ASSERT_EQ(arr->items.size(), 2u);
    EXPECT_EQ(arr->items[0].as_array()->items[1].as_int(), 2);
    EXPECT_EQ(arr->items[1].as_array()->items[0].as_int(), 3);
    EXPECT_EQ((*f)->get_int("i8"), -1);
    EXPECT_EQ((*f)->get_int("i16"), -2);
    EXPECT_EQ((*f)->get_int("u64"), 1);
    EXPECT_DOUBLE_EQ(*(*f)->get_float("f64"), 1.0);
    EXPECT_EQ((*f)->get_bool("bool"), true);
}

TEST(GgufBadInput, WrongMagic) {
    auto b = valid_builder();
    b.magic = 0x12345678;
    EXPECT_NE(open_error(b, "magic.gguf").find("not a GGUF file"), std::string::npos);
}

TEST(GgufBadInput, UnsupportedVersion) {
    auto b = valid_builder();
    b.version = 7;
    EXPECT_NE(open_error(b, "version.gguf").find("unsupported GGUF version 7"), std::string::npos);
}

TEST(GgufBadInput, UnknownTensorType) {
    GgufBuilder b;
    b.tensor("x.weight", {32}, 250, std::vector<uint8_t>(64));
    const auto e = open_error(b, "type.gguf");
    EXPECT_NE(e.find("x.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("unknown tensor type 250"), std::string::npos) << e;
}

TEST(GgufBadInput, TensorDataOutOfBounds) {
    GgufBuilder b;
    b.tensor("x.weight", {4}, 0, test::f32_bytes(4), /*offset=*/1 << 20);
    const auto e = open_error(b, "bounds.gguf");
    EXPECT_NE(e.find("x.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("outside the file"), std::string::npos) << e;
}

TEST(GgufBadInput, DimensionProductOverflows) {
    GgufBuilder b;
    b.tensor("x.weight", {1ull << 40, 1ull << 40, 1ull << 40}, 0, {});
    const auto e = open_error(b, "overflow.gguf");
    EXPECT_NE(e.find("overflow"), std::string::npos) << e;
}

TEST(GgufBadInput, HugeDimensionWithoutOverflowIsOutOfBounds) {
    GgufBuilder b;
    b.tensor("x.weight", {1ull << 30, 1ull << 20}, 0, {});
    EXPECT_NE(open_error(b, "huge.gguf").find("outside the file"), std::string::npos);
}

TEST(GgufBadInput, DuplicateTensor) {
    GgufBuilder b;
    b.tensor("x.weight", {4}, 0, test::f32_bytes(4));
    b.tensor("x.weight", {4}, 0, test::f32_bytes(4));
    EXPECT_NE(open_error(b, "dup.gguf").find("duplicate tensor 'x.weight'"), std::string::npos);
}

TEST(GgufBadInput, DuplicateKey) {
    GgufBuilder b;
    b.kv_u32("k", 1);
    b.kv_u32("k", 2);
    EXPECT_NE(open_error(b, "dupkey.gguf").find("duplicate metadata key 'k'"), std::string::npos);
}

TEST(GgufBadInput, HugeArrayCountIsRejectedBeforeAllocating) {
    GgufBuilder b;
    b.kv_raw("arr", 9, {4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f});
    EXPECT_NE(open_error(b, "hugearr.gguf").find("truncated"), std::string::npos);
}

TEST(GgufBadInput, HugeStringLength) {
    GgufBuilder b;
    b.kv_raw("s", 8, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f});
    EXPECT_NE(open_error(b, "hugestr.gguf").find("truncated"), std::string::npos);
}

TEST(GgufBadInput, DeeplyNestedArrays) {
    GgufBuilder b;
    std::vector<uint8_t> v;
    for (int i = 0; i < 20; ++i) v.insert(v.end(), {9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0});
    v.insert(v.end(), {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    b.kv_raw("deep", 9, v);
    EXPECT_NE(open_error(b, "deep.gguf").find("nested"), std::string::npos);
}

TEST(GgufBadInput, BadAlignment) {
    GgufBuilder b;
    b.kv_u32("general.alignment", 3);
    EXPECT_NE(open_error(b, "align.gguf").find("power of two"), std::string::npos);
}

// Every prefix of a real model file either fails with a "truncated" error or parses; never a crash.
TEST(GgufBadInput, EveryTruncationOfARealFileGivesAnError) {
    const std::string src = test::gguf_path("llama", "q8_0");
    std::ifstream in(src, std::ios::binary);
    std::vector<char> all((std::istreambuf_iterator<char>(in)), {});
    ASSERT_GT(all.size(), 1000u);
    const std::string path = tmp_path("trunc.gguf");
    // Dense cuts through the header, sparse ones through the data.
    std::vector<size_t> cuts;
    for (size_t n = 0; n < 20000 && n < all.size(); n += 7) cuts.push_back(n);
    for (size_t n = 20000; n < all.size(); n += all.size() / 50) cuts.push_back(n);
    for (size_t n : cuts) {
        std::ofstream(path, std::ios::binary).write(all.data(), std::streamsize(n));
        auto f = gguf::File::open(path);
        ASSERT_FALSE(f.ok()) << "a " << n << "-byte prefix parsed";
        EXPECT_FALSE(f.message().empty());
    }
}

TEST(ModelBadInput, UnknownArchitecture) {
    GgufBuilder b;
    b.kv_str("general.architecture", "mamba9");
    auto m = load_model(b.write(tmp_path("arch.gguf")));
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("unknown architecture 'mamba9'"), std::string::npos) << m.message();
    EXPECT_NE(m.message().find("supported: llama"), std::string::npos) << m.message();
}

TEST(ModelBadInput, MissingTensorIsNamed) {
    GgufBuilder b;
    b.kv_str("general.architecture", "llama");
    b.kv_u32("llama.block_count", 1);
    b.kv_u32("llama.embedding_length", 8);
    b.kv_u32("llama.feed_forward_length", 16);
    b.kv_u32("llama.attention.head_count", 2);
    b.tensor("token_embd.weight", {8, 10}, 0, test::f32_bytes(80));
    b.tensor("output_norm.weight", {8}, 0, test::f32_bytes(8));
    auto m = load_model(b.write(tmp_path("missing.gguf")));
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("missing tensor 'blk.0.attn_norm.weight'"), std::string::npos)
        << m.message();
}

TEST(ModelBadInput, WrongShapeIsNamed) {
    GgufBuilder b;
    b.kv_str("general.architecture", "llama");
    b.kv_u32("llama.block_count", 1);
    b.kv_u32("llama.embedding_length", 8);
    b.kv_u32("llama.feed_forward_length", 16);
    b.kv_u32("llama.attention.head_count", 2);
    b.tensor("token_embd.weight", {8, 10}, 0, test::f32_bytes(80));
    b.tensor("output_norm.weight", {7}, 0, test::f32_bytes(7));
    auto m = load_model(b.write(tmp_path("shape.gguf")));
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("'output_norm.weight' has shape [7], expected [8]"), std::string::npos)
        << m.message();
}

TEST(ModelBadInput, MissingHyperparameterIsNamed) {
    GgufBuilder b;
    b.kv_str("general.architecture", "llama");
    b.kv_u32("llama.embedding_length", 8);
    auto m = load_model(b.write(tmp_path("hparam.gguf")));
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("missing metadata key 'llama.block_count'"), std::string::npos)
        << m.message();
}

TEST(ModelBadInput, ExpertCountsOutOfRange) {
    GgufBuilder b;
    b.kv_str("general.architecture", "llama");
    b.kv_u32("llama.block_count", 1);
    b.kv_u32("llama.embedding_length", 8);
    b.kv_u32("llama.feed_forward_length", 16);
    b.kv_u32("llama.attention.head_count", 2);
    b.kv_u32("llama.expert_count", 4);
    b.kv_u32("llama.expert_used_count", 9);
    auto m = load_model(b.write(tmp_path("experts.gguf")));
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("expert_used_count"), std::string::npos) << m.message();
}

}  // namespace
}  // namespace moe
