// Crafted file tables: overlapping or misaligned GGUF tensor data, safetensors data_offsets that
// overlap, leave holes or are shifted by a byte, and empty names. Each must be refused with a
// message naming the tensors; the well-formed variant of each file is accepted.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "formats/safetensors.h"
#include "gguf/gguf.h"
#include "gguf_builder.h"

namespace {

std::string as_string(const std::vector<uint8_t>& b) {
    return std::string(b.begin(), b.end());
}

std::string gguf_error(const moe::test::GgufBuilder& b) {
    auto f = moe::gguf::File::parse(moe::MappedFile::from_bytes(as_string(b.bytes()), "t.gguf"));
    return f ? std::string() : f.message();
}

const std::vector<uint8_t> k64(64, 0);  // 16 f32

TEST(HostileFormats, GgufOverlappingTensorsAreRefused) {
    moe::test::GgufBuilder ok;
    ok.tensor("a", {16}, 0, k64);
    ok.tensor("b", {16}, 0, k64);
    EXPECT_EQ(gguf_error(ok), "");
    moe::test::GgufBuilder same;  // b starts where a does
    same.tensor("a", {16}, 0, k64);
    same.tensor("b", {16}, 0, k64, 0);
    const std::string e = gguf_error(same);
    EXPECT_NE(e.find("'a'"), std::string::npos) << e;
    EXPECT_NE(e.find("'b'"), std::string::npos) << e;
    EXPECT_NE(e.find("overlap"), std::string::npos) << e;
    moe::test::GgufBuilder partial;  // b starts inside a (32 is aligned, a is 64 bytes)
    partial.tensor("a", {16}, 0, k64);
    partial.tensor("b", {8}, 0, std::vector<uint8_t>(32, 0), 32);
    EXPECT_NE(gguf_error(partial).find("overlap"), std::string::npos);
}

TEST(HostileFormats, GgufMisalignedOffsetAndEmptyNamesAreRefused) {
    moe::test::GgufBuilder mis;
    mis.tensor("a", {16}, 0, k64, 4);
    EXPECT_NE(gguf_error(mis).find("not aligned"), std::string::npos);
    moe::test::GgufBuilder empty_tensor;
    empty_tensor.tensor("", {16}, 0, k64);
    EXPECT_NE(gguf_error(empty_tensor).find("empty name"), std::string::npos);
    moe::test::GgufBuilder empty_key;
    empty_key.kv_u32("", 1);
    EXPECT_NE(gguf_error(empty_key).find("empty key"), std::string::npos);
}

// A safetensors file of F32 tensors; offsets as given.
std::string safetensors(const nlohmann::json& header, size_t data_bytes) {
    std::string h = header.dump();
    while (h.size() % 8) h += ' ';
    std::string out(8, '\0');
    const uint64_t n = h.size();
    std::memcpy(out.data(), &n, 8);
    return out + h + std::string(data_bytes, '\0');
}

std::string st_error(const nlohmann::json& header, size_t data_bytes) {
    auto f = moe::SafetensorsFile::parse(
        moe::MappedFile::from_bytes(safetensors(header, data_bytes), "t.st"));
    return f ? std::string() : f.message();
}

nlohmann::json entry(int64_t n, int64_t begin) {
    return {{"dtype", "F32"}, {"shape", {n}}, {"data_offsets", {begin, begin + 4 * n}}};
}

TEST(HostileFormats, SafetensorsRegionsMustTileTheBuffer) {
    EXPECT_EQ(st_error({{"a", entry(4, 0)}, {"b", entry(4, 16)}}, 32), "");
    EXPECT_EQ(st_error({{"b", entry(4, 16)}, {"a", entry(4, 0)}}, 32), "");  // any order
    const std::string overlap = st_error({{"a", entry(4, 0)}, {"b", entry(4, 12)}}, 28);
    EXPECT_NE(overlap.find("overlap"), std::string::npos) << overlap;
    const std::string shifted = st_error({{"a", entry(4, 1)}}, 17);  // a 1-byte shift
    EXPECT_NE(shifted.find("belong to no tensor"), std::string::npos) << shifted;
    const std::string hole = st_error({{"a", entry(4, 0)}, {"b", entry(4, 20)}}, 36);
    EXPECT_NE(hole.find("[16, 20)"), std::string::npos) << hole;
    const std::string tail = st_error({{"a", entry(4, 0)}}, 20);
    EXPECT_NE(tail.find("cover 16 of the 20"), std::string::npos) << tail;
    EXPECT_NE(st_error({{"", entry(4, 0)}}, 16).find("empty name"), std::string::npos);
}

}  // namespace
