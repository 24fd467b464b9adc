// Stop strings over streamed text: text is released as it arrives, except a tail that may be the
// beginning of a stop string (held back until the next text shows it is not); once a stop string
// appears, the text before it is released and nothing after.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moe {

class StopMatcher {
  public:
    explicit StopMatcher(std::vector<std::string> stops);  // empty strings are ignored

    // Appends text; returns the part now known to precede any stop string.
    std::string push(std::string_view text);
    bool stopped() const { return stopped_; }
    // The held-back tail (no stop string followed it); empty once stopped.
    std::string flush();

  private:
    std::vector<std::string> stops_;
    std::string held_;  // shorter than the longest stop string
    bool stopped_ = false;
};

// Length of the longest tail of `text` that is a proper prefix of a stop string.
size_t stop_holdback(std::string_view text, const std::vector<std::string>& stops);

}  // namespace moe
