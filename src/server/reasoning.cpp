// <think> block splitting; see reasoning.h.
#include "server/reasoning.h"

#include <algorithm>

namespace moe::server {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

bool is_space(char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

// Length of the longest tail of `s` that is a proper prefix of `tag`.
size_t partial_tag_tail(std::string_view s, std::string_view tag) {
    for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
        if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
    return 0;
}

}  // namespace

ReasoningSplitter::ReasoningSplitter(bool starts_in_reasoning)
    : state_(starts_in_reasoning ? State::Reasoning : State::Start) {}

ReasoningSplitter::Delta ReasoningSplitter::feed(std::string_view text) {
    buf_ += text;
    Delta d;
    while (true) {
        switch (state_) {
            case State::Start: {
                // Only an opening tag before any answer text starts a reasoning block.
                size_t i = 0;
                while (i < buf_.size() && is_space(buf_[i])) ++i;
                if (i == buf_.size()) return d;
                const std::string_view rest = std::string_view(buf_).substr(i);
                if (rest.substr(0, kOpen.size()) == kOpen) {
                    buf_.erase(0, i + kOpen.size());
                    state_ = State::Reasoning;
                    continue;
                }
                if (rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) return d;
                state_ = State::Content;
                continue;
            }
            case State::Reasoning: {
                const size_t pos = buf_.find(kClose);
                if (pos != std::string::npos) {
                    d.reasoning += buf_.substr(0, pos);
                    buf_.erase(0, pos + kClose.size());
                    state_ = State::AfterReasoning;
                    continue;
                }
                const size_t hold = partial_tag_tail(buf_, kClose);
                d.reasoning += buf_.substr(0, buf_.size() - hold);
                buf_.erase(0, buf_.size() - hold);
                return d;
            }
            case State::AfterReasoning: {
                // The blank lines between the block and the answer belong to neither.
                size_t i = 0;
                while (i < buf_.size() && is_space(buf_[i])) ++i;
                buf_.erase(0, i);
                if (buf_.empty()) return d;
                state_ = State::Content;
                continue;
            }
            case State::Content:
                d.content += buf_;
                buf_.clear();
                return d;
        }
    }
}

ReasoningSplitter::Delta ReasoningSplitter::finish() {
    Delta d;
    if (state_ == State::Reasoning)
        d.reasoning = std::move(buf_);
    else if (state_ != State::AfterReasoning)
        d.content = std::move(buf_);
    buf_.clear();
    return d;
}

bool prompt_opens_reasoning(std::string_view prompt) {
    while (!prompt.empty() && is_space(prompt.back())) prompt.remove_suffix(1);
    return prompt.size() >= kOpen.size() && prompt.substr(prompt.size() - kOpen.size()) == kOpen;
}

}  // namespace moe::server
