// Synthetic model files: a preset's exact tensor list (from plan_model) and header, filled with
// random weights, written as a GGUF v3 that this engine and the upstream one both load. Used to
// benchmark real model shapes without downloading them.
//
// Weights: float types get N(0, 0.02) values (routers 0.06, norm weights 1 + N(0, 0.02)). Block
// types are not quantized from floats: each block is written directly as random valid bytes with
// sane scales (f16 d chosen per type so that the dequantized values have an RMS of about the
// same sigma, dmin/m set to centre them; MXFP4 gets the matching e8m0 exponent). Streamed in
// chunks from a seeded per-chunk RNG, so output is deterministic for a seed and thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/tensor.h"
#include "models/presets.h"

namespace moe {

// A file type as the upstream quantizer names it ("q4_k_m"): its llama_ftype id (written as
// general.file_type) and the default tensor type of the mix.
struct SynthFileType {
    std::string name;
    uint32_t ftype_id;
    DType base;
};
const std::vector<SynthFileType>& synth_file_types();
const SynthFileType* find_synth_file_type(std::string_view name);  // case-insensitive
std::string synth_file_type_names();

// The preset with block_count = n_layers; leading dense layers are kept (at most n_layers - 1,
// so at least one MoE layer remains when the model has any).
Result<Preset> preset_with_layers(const Preset& p, int n_layers);

struct SynthTensor {
    std::string name;
    Shape shape;  // outermost first
    DType dtype;
};

// Per-tensor types of the file, following the upstream quantizer's rules for the mix: only
// 2-D+ "*.weight" tensors other than routers are quantized (norms, biases, routers, sinks stay
// f32); output.weight -> Q6_K (Q8_0 when its rows are not a multiple of 256); the _M mixes and
// 8-expert models bump attn_v / attn_k / attn_output / ffn_down as upstream does; a row length
// that is not a multiple of the block size falls back (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0,
// Q2_K/Q3_K/IQ4_XS->IQ4_NL, then F16). Legacy types on such rows also fall back to F16 (the
// upstream tool refuses those files).
Result<std::vector<SynthTensor>> synth_tensors(const Preset& p, const SynthFileType& ft);

struct SynthOptions {
    uint64_t seed = 1;
    int n_threads = 0;  // 0: hardware concurrency
    std::function<void(uint64_t done, uint64_t total)> progress;  // bytes of tensor data
};

struct SynthResult {
    uint64_t file_bytes = 0, header_bytes = 0, n_tensors = 0, n_params = 0;
};

// Writes the file. Memory use is a few chunks of a few MiB, whatever the model size.
Result<SynthResult> synth_write(const Preset& p, const SynthFileType& ft, const std::string& path,
                                const SynthOptions& opt = {});

}  // namespace moe
