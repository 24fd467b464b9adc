#include "core/utf8.h"

#include <array>

namespace moe::utf8 {

size_t lead_len(uint8_t first_byte) {
    // Indexed by the high nibble: 0x0-0x7 ASCII, 0x8-0xB continuation, 0xC-0xD two bytes,
    // 0xE three bytes, 0xF four bytes.
    static constexpr std::array<uint8_t, 16> kLen = {1, 1, 1, 1, 1, 1, 1, 1,
                                                     1, 1, 1, 1, 2, 2, 3, 4};
    return kLen[first_byte >> 4];
}

namespace {

bool is_continuation(char c) {
    return (static_cast<uint8_t>(c) & 0xC0) == 0x80;
}

}  // namespace

size_t char_len(std::string_view text, size_t pos) {
    const size_t n = lead_len(static_cast<uint8_t>(text[pos]));
    if (n == 1 || pos + n > text.size()) return 1;
    for (size_t i = 1; i < n; ++i)
        if (!is_continuation(text[pos + i])) return 1;
    return n;
}

uint32_t decode(std::string_view text, size_t pos, size_t& len) {
    const auto b0 = static_cast<uint8_t>(text[pos]);
    const size_t n = lead_len(b0);
    len = 1;
    if (n == 1) return b0 < 0x80 ? b0 : 0xFFFD;
    if (pos + n > text.size()) return 0xFFFD;
    uint32_t cp = b0 & (0x7F >> n);
    for (size_t i = 1; i < n; ++i) {
        if (!is_continuation(text[pos + i])) return 0xFFFD;
        cp = (cp << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
    }
    len = n;
    return cp;
}

void append(std::string& out, uint32_t cp) {
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

size_t valid_len(std::string_view text, size_t pos) {
    const auto c = static_cast<uint8_t>(text[pos]);
    if (c < 0x80) return 1;
    size_t need = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0)
        need = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0)
        need = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0)
        need = 3, cp = c & 0x07;
    else
        return 0;
    if (pos + need >= text.size()) return 0;
    for (size_t k = 1; k <= need; ++k) {
        if (!is_continuation(text[pos + k])) return 0;
        cp = (cp << 6) | (static_cast<uint8_t>(text[pos + k]) & 0x3F);
    }
    // Overlong forms, surrogates, beyond U+10FFFF.
    if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return need + 1;
}

bool is_valid(std::string_view text) {
    for (size_t i = 0; i < text.size();) {
        const size_t n = valid_len(text, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string sanitize(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const size_t n = valid_len(text, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD
            ++i;
        } else {
            out.append(text, i, n);
            i += n;
        }
    }
    return out;
}

size_t complete_prefix(std::string_view text) {
    // Walk back over at most 3 continuation bytes to the last lead byte.
    const size_t n = text.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        const auto c = static_cast<uint8_t>(text[n - back]);
        if ((c & 0xC0) == 0x80) continue;
        size_t need = 1;
        if ((c & 0xE0) == 0xC0)
            need = 2;
        else if ((c & 0xF0) == 0xE0)
            need = 3;
        else if ((c & 0xF8) == 0xF0)
            need = 4;
        return back >= need ? n : n - back;
    }
    return n;
}

std::vector<std::string> chars(std::string_view text) {
    std::vector<std::string> out;
    for (size_t pos = 0; pos < text.size();) {
        const size_t n = char_len(text, pos);
        out.emplace_back(text.substr(pos, n));
        pos += n;
    }
    return out;
}

}  // namespace moe::utf8
