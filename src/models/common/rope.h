// Rotary position embeddings, including YaRN context extension (as Hugging Face computes it).
#pragma once

#include <cstdint>
#include <vector>

namespace moe {

struct RopeConfig {
    int n_dims = 0;              // rotated dims per head (the first n_dims of each head)
    double freq_base = 10000.0;  // theta
    bool neox = false;           // true: rotate (x[i], x[i + n/2]); false: adjacent (x[2i], x[2i+1])
    // YaRN (factor > 1 enables it).
    double yarn_factor = 1.0;
    int yarn_orig_ctx = 0;
    double yarn_beta_fast = 32.0, yarn_beta_slow = 1.0;
    bool yarn_truncate = true;   // round the correction range to whole dims (HF "truncate")
    double attn_factor = 1.0;    // multiplies cos and sin (YaRN mscale); 1 = off
};

// Precomputed inverse frequencies; rotates head vectors in place.
class Rope {
public:
    Rope() = default;
    explicit Rope(const RopeConfig& c);
    // x: [n_heads, head_stride] for one token at position pos.
    void apply(float* x, int n_heads, int head_stride, int64_t pos) const;
    const RopeConfig& config() const { return c_; }

private:
    RopeConfig c_;
    std::vector<double> inv_freq_;  // [n_dims / 2]
};

}  // namespace moe
