// Incremental detokenizer: turns generated token ids into text one token at a time, at a cost
// independent of the text so far, giving exactly the text a whole-sequence Tokenizer::decode
// adds after the context (SPM leading space, byte-fallback tokens that join into one character).
// Only complete UTF-8 is released; an unfinished character waits for the next token or flush().
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace moe {

class IncrementalDecoder {
  public:
    // `context`: the ids before the generated ones (the prompt), which only set the decoding
    // state (whether the SPM leading space is still to be dropped).
    IncrementalDecoder(const Tokenizer& tok, std::span<const int32_t> context,
                       bool skip_special = false);

    // Appends a token; returns the text it completes (often empty, never a partial character).
    std::string push(int32_t id);
    // Releases what is held back (bytes of a character the sequence never finished).
    std::string flush();

  private:
    const Tokenizer& tok_;
    bool skip_special_;
    bool at_start_ = true;
    std::string pending_;  // at most 3 bytes: the start of an unfinished UTF-8 character
};

}  // namespace moe
