// Pre-tokenizer for byte-level BPE: the regexes named by tokenizer.ggml.pre, applied in sequence
// with PCRE2 (UTF + Unicode properties). Each regex splits every piece produced by the previous
// one into matches and the text between matches, so no byte of the input is ever dropped.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace moe::tok {

// The regex sequence for a tokenizer.ggml.pre name. Unknown names get the upstream default
// sequence; `known` (if given) tells whether the name was recognised.
std::vector<std::string> pretokenizer_regexes(std::string_view pre, bool* known = nullptr);

class RegexSplitter {
  public:
    static Result<RegexSplitter> create(const std::vector<std::string>& patterns);

    // Pieces of `text` (views into it), in order, covering it exactly.
    std::vector<std::string_view> split(std::string_view text) const;

  private:
    struct Compiled;
    std::vector<std::shared_ptr<const Compiled>> regexes_;
};

}  // namespace moe::tok
