// A batch of tokens evaluated together, possibly from several sequences (continuous batching):
// each token carries its position and sequence id. Tokens of one sequence appear in position order.
#pragma once

#include <cstdint>
#include <vector>

namespace moe {

struct Batch {
    std::vector<int32_t> token;   // [T]
    std::vector<int32_t> pos;     // [T]
    std::vector<int32_t> seq;     // [T]
    std::vector<uint8_t> logits;  // [T]: 1 = return this token's logits

    void add(int32_t tok, int32_t p, int32_t s, bool want_logits) {
        token.push_back(tok);
        pos.push_back(p);
        seq.push_back(s);
        logits.push_back(want_logits ? 1 : 0);
    }
    int64_t size() const { return int64_t(token.size()); }
    int64_t n_outputs() const {
        int64_t n = 0;
        for (auto l : logits) n += l;
        return n;
    }
    void clear() { token.clear(), pos.clear(), seq.clear(), logits.clear(); }
};

// Router decisions of one forward pass, filled when requested.
struct RouterTrace {
    int n_expert = 0, n_expert_used = 0;
    // false: expert ids and weights only, `logits` stays empty (the serving scheduler traces
    // every step; the router logits are n_expert floats per token and MoE layer).
    bool with_logits = true;
    // Appended per MoE layer in layer order, T rows each.
    std::vector<float> logits;      // [n_moe_layers, T, n_expert]: before top-k
    std::vector<int32_t> selected;  // [n_moe_layers, T, n_expert_used]
    std::vector<float> weights;     // [n_moe_layers, T, n_expert_used]
};

}  // namespace moe
