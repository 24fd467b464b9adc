// Failure checks on one generated answer: empty output, a repetition loop, invalid UTF-8.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

// Share of the n-grams of ids that repeat an earlier one (0 when ids are shorter than 2n).
double repeated_ngram_share(const std::vector<int32_t>& ids, int n = 4);
// The failures seen in text (its tokens: ids); repeat_share, if given, receives the 4-gram share.
std::vector<std::string> detect_failures(const std::string& text, const std::vector<int32_t>& ids,
                                         double repeat_threshold, double* repeat_share = nullptr);

}  // namespace moe
