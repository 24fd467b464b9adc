// The GPT-2 byte-level alphabet (every byte mapped to a printable code point): the byte-level BPE
// tokenizer encodes with it and `synth` writes vocabularies in it. UTF-8 itself is core/utf8.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace moe {

// GPT-2 byte-level mapping: byte -> UTF-8 text of its stand-in code point.
const std::string& byte_to_unicode(uint8_t b);
// Inverse: a stand-in code point -> its byte, or -1 if `cp` is not in the alphabet.
int unicode_to_byte(uint32_t cp);

}  // namespace moe
