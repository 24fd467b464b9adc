// UTF-8 helpers: the one home for decoding, encoding, validating and splitting UTF-8 text.
// Two readings of malformed input coexist on purpose:
//  - lenient (lead_len, char_len, decode): how tokenizers split bytes into symbols; a stray or
//    truncated byte becomes a symbol of its own, overlong forms are not rejected;
//  - strict (valid_len, is_valid, sanitize): what counts as valid UTF-8 for reports and JSON
//    (no overlong forms, no surrogates, nothing above U+10FFFF).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::utf8 {

// Length of the sequence announced by its first byte (1 for continuation bytes and ASCII).
size_t lead_len(uint8_t first_byte);

// Length of the character at text[pos]: its announced length when all its continuation bytes
// are present, else 1.
size_t char_len(std::string_view text, size_t pos);

// Decodes the code point at text[pos]; sets `len` to the bytes consumed (at least 1).
// A malformed or truncated sequence yields U+FFFD with len 1.
uint32_t decode(std::string_view text, size_t pos, size_t& len);

// Appends the encoding of code point `cp` to `out`.
void append(std::string& out, uint32_t cp);

// Length of the strictly valid sequence at text[pos], or 0 when it is not one.
size_t valid_len(std::string_view text, size_t pos);
bool is_valid(std::string_view text);
// `text` with each byte that does not start a strictly valid sequence replaced by U+FFFD.
std::string sanitize(std::string_view text);

// Length of the longest prefix of `text` that does not end inside a multi-byte character (what
// can be shown while the rest of the character is still being generated).
size_t complete_prefix(std::string_view text);

// The characters of `text` (split as char_len does), each as its own string.
std::vector<std::string> chars(std::string_view text);

}  // namespace moe::utf8
