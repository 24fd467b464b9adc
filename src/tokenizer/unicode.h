// UTF-8 helpers and the GPT-2 byte-level alphabet (every byte mapped to a printable code point),
// shared by the SentencePiece-style and byte-level BPE tokenizers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe::tok {

// Length of the UTF-8 sequence announced by its first byte (1 for continuation/invalid bytes).
size_t utf8_seq_len(uint8_t first_byte);

// Length of the character at text[pos]: its sequence length when the sequence is complete and
// well formed, else 1 (a stray byte stays a symbol of its own).
size_t utf8_char_len(std::string_view text, size_t pos);

// Appends the UTF-8 encoding of code point `cp` to `out`.
void append_utf8(std::string& out, uint32_t cp);

// Decodes the code point starting at text[pos]; sets `len` to the bytes consumed (at least 1).
// Malformed input yields 0xFFFD with len 1.
uint32_t decode_utf8(std::string_view text, size_t pos, size_t& len);

// GPT-2 byte-level mapping: byte -> UTF-8 text of its stand-in code point.
const std::string& byte_to_unicode(uint8_t b);
// Inverse: a stand-in code point -> its byte, or -1 if `cp` is not in the alphabet.
int unicode_to_byte(uint32_t cp);

}  // namespace moe::tok
