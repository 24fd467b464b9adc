// The GPT-2 byte-level alphabet (every byte mapped to a printable code point) used by the
// byte-level BPE tokenizer. UTF-8 itself is handled by core/utf8.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace moe::tok {

// GPT-2 byte-level mapping: byte -> UTF-8 text of its stand-in code point.
const std::string& byte_to_unicode(uint8_t b);
// Inverse: a stand-in code point -> its byte, or -1 if `cp` is not in the alphabet.
int unicode_to_byte(uint32_t cp);

}  // namespace moe::tok
