#include "runtime/stop_strings.h"

#include <algorithm>
#include <utility>

namespace moe {

size_t stop_holdback(std::string_view text, const std::vector<std::string>& stops) {
    size_t hold = 0;
    for (const auto& st : stops) {
        if (st.empty()) continue;
        for (size_t n = std::min(st.size() - 1, text.size()); n > hold; --n)
            if (text.substr(text.size() - n) == std::string_view(st).substr(0, n)) {
                hold = n;
                break;
            }
    }
    return hold;
}

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (auto& s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopMatcher::push(std::string_view text) {
    if (stopped_) return {};
    held_.append(text);
    // Only the held tail plus the new text can hold a match, so the cost per call is bounded by
    // the new text and the stop strings, not by what was generated before.
    size_t first = std::string::npos;
    for (const auto& st : stops_) first = std::min(first, held_.find(st));
    if (first != std::string::npos) {
        stopped_ = true;
        std::string out = held_.substr(0, first);
        held_.clear();
        return out;
    }
    const size_t keep = stop_holdback(held_, stops_);
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
}

std::string StopMatcher::flush() {
    return stopped_ ? std::string() : std::exchange(held_, {});
}

}  // namespace moe
