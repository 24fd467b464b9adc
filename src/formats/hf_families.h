// Per-family knowledge for presenting a Hugging Face checkpoint as the upstream HF->GGUF converter
// would have written it: tensor name tables (data, one table set per family), the transform each
// tensor needs, and the config.json -> GGUF metadata translation.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gguf/gguf.h"

namespace moe::hf {

// How an output tensor is derived from its HF source tensor(s).
enum class Op : uint8_t {
    Copy,      // unchanged
    PermuteQ,  // Llama RoPE row permutation with n_head (HF rotate-half -> GGUF interleaved)
    PermuteK,  // the same with n_head_kv
    Stack,     // hf pattern contains {e}: experts 0..n_expert-1 stacked on a new outer dim
    KvBToK,    // DeepSeek kv_b_proj [n_head*(nope+v), kv_lora] -> attn_k_b [n_head, kv_lora, nope]
    KvBToV,    // DeepSeek kv_b_proj -> attn_v_b [n_head, v, kv_lora]
    GateUpEven,      // gpt-oss fused gate_up (gate = even columns), weights transposed to [E, I, H]
    GateUpOdd,       // the same for up (odd columns)
    TransposeLast2,  // gpt-oss down_proj [E, I, H] -> [E, H, I]
    // gpt-oss MXFP4 checkpoints (transformers integrations/mxfp4.py, Mxfp4GptOssExperts and
    // convert_moe_packed_tensors): U8 `*_blocks` [E, R, G, 16] and `*_scales` [E, R, G], one row per
    // output feature (R = 2I interleaved gate/up rows for gate_up_proj, H for down_proj), G
    // blocks of 32 inputs. Byte k of a block holds element 2k (low nibble) and 2k+1 (high);
    // value = FP4_E2M1[nibble] * 2^(scale - 127). These map onto MXFP4 blocks (E8M0 scale + the
    // same nibble codes) with only the nibbles reordered: no dequantization.
    MxfpGateEven,  // gate_up_proj_blocks even rows -> ffn_gate_exps [E, I, H] MXFP4
    MxfpGateOdd,   // odd rows -> ffn_up_exps
    MxfpRows,      // down_proj_blocks [E, H, I/32, 16] -> ffn_down_exps [E, H, I] MXFP4
};

// hf: HF tensor name with "{i}" (layer) and optionally "{e}" (expert); gguf: GGUF name with "{i}".
// A rule whose HF tensor is absent is skipped (optional tensors such as biases).
struct TensorRule {
    std::string_view hf;
    std::string_view gguf;
    Op op = Op::Copy;
};

// config.json access. Type mismatches are recorded (first one wins) instead of thrown, so family
// code stays terse; the caller checks error() once at the end.
class Config {
  public:
    explicit Config(nlohmann::json j) : j_(std::move(j)) {}

    bool has(std::string_view key) const;  // present and not null
    std::optional<int64_t> get_int(std::string_view key);
    std::optional<double> get_float(std::string_view key);
    std::optional<bool> get_bool(std::string_view key);
    std::optional<std::string> get_string(std::string_view key);
    // The first of several alternative keys that is present.
    std::optional<int64_t> first_int(std::initializer_list<std::string_view> keys);
    std::optional<double> first_float(std::initializer_list<std::string_view> keys);
    std::optional<std::string> first_string(std::initializer_list<std::string_view> keys);
    // RoPE parameters: transformers >= 5 keeps them in "rope_parameters", older versions in
    // "rope_scaling" (and "rope_theta" at the top level). Looks in all three.
    std::optional<double> rope_float(std::string_view key);
    std::optional<int64_t> rope_int(std::string_view key);
    std::optional<std::string> rope_string(std::string_view key);

    const std::string& error() const { return error_; }
    const nlohmann::json& json() const { return j_; }

  private:
    const nlohmann::json* find(const nlohmann::json& obj, std::string_view key) const;
    const nlohmann::json* rope_find(std::string_view key) const;
    std::optional<int64_t> to_int(const nlohmann::json* v, std::string_view key);
    std::optional<double> to_float(const nlohmann::json* v, std::string_view key);
    std::optional<std::string> to_string(const nlohmann::json* v, std::string_view key);
    void fail(std::string msg) {
        if (error_.empty()) error_ = std::move(msg);
    }

    nlohmann::json j_;
    std::string error_;
};

// GGUF metadata being built. Keys given without a "general." prefix get "{arch}." prepended.
// Setting a key again replaces the value in place (the converter's later calls win).
class Meta {
  public:
    explicit Meta(std::string arch) : arch_(std::move(arch)) {}
    const std::string& arch() const { return arch_; }

    void set(const std::string& full_key, gguf::Value v);
    void u32(std::string_view key, std::optional<int64_t> v);
    void f32(std::string_view key, std::optional<double> v);
    void boolean(std::string_view key, std::optional<bool> v);
    void str(std::string_view key, std::optional<std::string> v);
    void erase(std::string_view key);
    void fail(std::string msg) {
        if (error_.empty()) error_ = std::move(msg);
    }

    std::vector<std::pair<std::string, gguf::Value>>& entries() { return kv_; }
    const std::string& error() const { return error_; }

  private:
    std::string full(std::string_view key) const;
    std::string arch_;
    std::vector<std::pair<std::string, gguf::Value>> kv_;
    std::string error_;
};

struct FamilySpec {
    std::string_view hf_class;   // config.json "architectures"[0]
    std::string_view gguf_arch;  // general.architecture
    std::span<const std::span<const TensorRule>> rules;
    void (*hparams)(Config& cfg, Meta& meta);  // family keys, after the common ones
};

std::span<const FamilySpec> families();
const FamilySpec* find_family(std::string_view hf_class);
std::string supported_families();  // "LlamaForCausalLM, MixtralForCausalLM, ..."

// The keys every family gets (TextModel.set_gguf_parameters upstream), in the converter's order.
void common_hparams(Config& cfg, Meta& meta);

}  // namespace moe::hf
