#include "tokenizer/unicode.h"

#include <array>

namespace moe::tok {

size_t utf8_seq_len(uint8_t first_byte) {
    // Indexed by the high nibble: 0x0-0x7 ASCII, 0x8-0xB continuation, 0xC-0xD two bytes,
    // 0xE three bytes, 0xF four bytes.
    static constexpr std::array<uint8_t, 16> kLen = {1, 1, 1, 1, 1, 1, 1, 1,
                                                     1, 1, 1, 1, 2, 2, 3, 4};
    return kLen[first_byte >> 4];
}

size_t utf8_char_len(std::string_view text, size_t pos) {
    const size_t n = utf8_seq_len(static_cast<uint8_t>(text[pos]));
    if (n == 1 || pos + n > text.size()) return 1;
    for (size_t i = 1; i < n; ++i)
        if ((static_cast<uint8_t>(text[pos + i]) & 0xC0) != 0x80) return 1;
    return n;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

uint32_t decode_utf8(std::string_view text, size_t pos, size_t& len) {
    const auto b0 = static_cast<uint8_t>(text[pos]);
    const size_t n = utf8_seq_len(b0);
    len = 1;
    if (n == 1) return b0 < 0x80 ? b0 : 0xFFFD;
    if (pos + n > text.size()) return 0xFFFD;
    uint32_t cp = b0 & (0x7F >> n);
    for (size_t i = 1; i < n; ++i) {
        const auto b = static_cast<uint8_t>(text[pos + i]);
        if ((b & 0xC0) != 0x80) return 0xFFFD;
        cp = (cp << 6) | (b & 0x3F);
    }
    len = n;
    return cp;
}

namespace {

struct ByteAlphabet {
    std::array<std::string, 256> to_text;
    std::array<int16_t, 512> to_byte{};

    ByteAlphabet() {
        to_byte.fill(-1);
        uint32_t next_extra = 256;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
            const uint32_t cp = printable ? b : next_extra++;
            append_utf8(to_text[b], cp);
            to_byte[cp] = static_cast<int16_t>(b);
        }
    }
};

const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) {
    return alphabet().to_text[b];
}

int unicode_to_byte(uint32_t cp) {
    return cp < 512 ? alphabet().to_byte[cp] : -1;
}

}  // namespace moe::tok
