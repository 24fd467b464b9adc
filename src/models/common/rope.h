// Rotary position embeddings, including YaRN context extension (as Hugging Face computes it) and
// Llama 3.x per-frequency scaling (GGUF rope_freqs divisors, HF rope_type "llama3").
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/ops.h"

namespace moe {

struct RopeConfig {
    int n_dims = 0;              // rotated dims per head (the first n_dims of each head)
    double freq_base = 10000.0;  // theta
    bool neox = false;  // true: rotate (x[i], x[i + n/2]); false: adjacent (x[2i], x[2i+1])
    // YaRN (factor > 1 enables it).
    double yarn_factor = 1.0;
    int yarn_orig_ctx = 0;
    double yarn_beta_fast = 32.0, yarn_beta_slow = 1.0;
    bool yarn_truncate = true;  // round the correction range to whole dims (HF "truncate")
    double attn_factor = 1.0;   // multiplies cos and sin (YaRN mscale); 1 = off
    // Per-frequency divisors: inv_freq[i] /= freq_divisors[i]. Empty = none. Llama 3.x files carry
    // them as the rope_freqs tensor; HF configs as rope_type "llama3" (see llama3_freq_divisors).
    std::vector<double> freq_divisors;  // [n_dims / 2]
};

// Hugging Face's rope_type "llama3" (_compute_llama3_parameters), as divisors of the default
// inverse frequencies: 1 for wavelengths below orig_ctx / high_freq_factor, `factor` above
// orig_ctx / low_freq_factor, and a smooth blend between.
struct Llama3Scaling {
    double factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
    int orig_ctx = 8192;  // original_max_position_embeddings
};
std::vector<double> llama3_freq_divisors(int n_dims, double freq_base, const Llama3Scaling& s);

// Precomputed inverse frequencies; ops::rope rotates with them.
class Rope {
  public:
    Rope() = default;
    explicit Rope(const RopeConfig& c);
    // What ops::rope needs; points into this object.
    ops::RopeParams params() const {
        return {c_.n_dims, c_.neox, c_.attn_factor, inv_freq_.data()};
    }
    const RopeConfig& config() const { return c_; }

  private:
    RopeConfig c_;
    std::vector<double> inv_freq_;  // [n_dims / 2]
};

}  // namespace moe
