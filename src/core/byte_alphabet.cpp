#include "core/byte_alphabet.h"

#include <array>

namespace moe {

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
            utf8::append(to_text[b], cp);
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

}  // namespace moe
