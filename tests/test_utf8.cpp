// core/utf8.h against the encodings the Unicode standard gives (Table 3-6/3-7), not against itself.
#include <gtest/gtest.h>

#include "core/utf8.h"

namespace moe {
namespace {

struct Known {
    uint32_t cp;
    const char* bytes;
};
// The boundaries of each sequence length, plus everyday characters.
constexpr Known kKnown[] = {
    {0x24, "\x24"},
    {0x7F, "\x7F"},
    {0x80, "\xC2\x80"},
    {0xE9, "\xC3\xA9"},
    {0x7FF, "\xDF\xBF"},
    {0x800, "\xE0\xA0\x80"},
    {0x20AC, "\xE2\x82\xAC"},
    {0xFFFD, "\xEF\xBF\xBD"},
    {0xFFFF, "\xEF\xBF\xBF"},
    {0x10000, "\xF0\x90\x80\x80"},
    {0x1F600, "\xF0\x9F\x98\x80"},
    {0x10FFFF, "\xF4\x8F\xBF\xBF"},
};

TEST(Utf8, EncodeDecodeKnownCodePoints) {
    for (const auto& k : kKnown) {
        std::string enc;
        utf8::append(enc, k.cp);
        EXPECT_EQ(enc, k.bytes) << std::hex << k.cp;
        size_t len = 0;
        EXPECT_EQ(utf8::decode(k.bytes, 0, len), k.cp) << std::hex << k.cp;
        EXPECT_EQ(len, std::string_view(k.bytes).size());
        EXPECT_EQ(utf8::char_len(k.bytes, 0), len);
        EXPECT_EQ(utf8::valid_len(k.bytes, 0), len);
        EXPECT_EQ(utf8::lead_len(uint8_t(k.bytes[0])), len);
    }
}

TEST(Utf8, LenientSplitKeepsStrayBytesAlone) {
    size_t len = 0;
    EXPECT_EQ(utf8::decode("\xE2\x82", 0, len), 0xFFFDu);  // truncated
    EXPECT_EQ(len, 1u);
    EXPECT_EQ(utf8::decode("\x82", 0, len), 0xFFFDu);  // continuation byte
    EXPECT_EQ(len, 1u);
    EXPECT_EQ(utf8::decode("\xE2x\xAC", 0, len), 0xFFFDu);  // broken continuation
    EXPECT_EQ(len, 1u);
    EXPECT_EQ(utf8::char_len("\xE2\x82", 0), 1u);
    EXPECT_EQ(utf8::char_len("\xE2\x82\xAC", 1), 1u);
    const std::vector<std::string> want = {"a", "\xC3\xA9", "\xE2", "\x82", "b"};
    EXPECT_EQ(utf8::chars("a\xC3\xA9\xE2\x82"
                          "b"),
              want);
}

TEST(Utf8, StrictValidation) {
    EXPECT_TRUE(utf8::is_valid("plain ascii"));
    EXPECT_TRUE(utf8::is_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    EXPECT_TRUE(utf8::is_valid(""));
    EXPECT_FALSE(utf8::is_valid("cut \xe2\x82"));
    EXPECT_FALSE(utf8::is_valid("\xc0\xaf"));          // overlong '/'
    EXPECT_FALSE(utf8::is_valid("\xe0\x80\xaf"));      // overlong, 3 bytes
    EXPECT_FALSE(utf8::is_valid("\xed\xa0\x80"));      // surrogate U+D800
    EXPECT_FALSE(utf8::is_valid("\xf4\x90\x80\x80"));  // U+110000
    EXPECT_FALSE(utf8::is_valid("\xff"));
    EXPECT_EQ(utf8::sanitize("a\xff"
                             "b\xe2\x82"),
              "a\xef\xbf\xbd"
              "b\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_EQ(utf8::sanitize("caf\xc3\xa9"), "caf\xc3\xa9");
}

TEST(Utf8, CompletePrefixStopsBeforeAPartialCharacter) {
    const std::string euro = "\xE2\x82\xAC", smile = "\xF0\x9F\x98\x80";
    EXPECT_EQ(utf8::complete_prefix(""), 0u);
    EXPECT_EQ(utf8::complete_prefix("ab"), 2u);
    EXPECT_EQ(utf8::complete_prefix("a" + euro), 4u);
    for (size_t cut = 1; cut < euro.size(); ++cut)
        EXPECT_EQ(utf8::complete_prefix("a" + euro.substr(0, cut)), 1u) << cut;
    for (size_t cut = 1; cut < smile.size(); ++cut)
        EXPECT_EQ(utf8::complete_prefix("ab" + smile.substr(0, cut)), 2u) << cut;
    EXPECT_EQ(utf8::complete_prefix("ab" + smile), 6u);
}

}  // namespace
}  // namespace moe
