// Presets: the hyperparameters of real published models, as GGUF metadata. With plan_model()
// they give the exact tensor list, which `synth` writes as a random-weight file and
// `inspect --like` counts, without downloading anything.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/metadata_source.h"

namespace moe {

struct Preset {
    std::string name;         // "olmoe-1b-7b"
    std::string hf_repo;      // where the figures come from, e.g. "allenai/OLMoE-1B-7B-0924"
    std::string arch;         // GGUF general.architecture
    std::vector<std::pair<std::string, gguf::Value>> metadata;  // general.* and {arch}.* keys
    int64_t n_vocab = 0;           // size of the synthetic vocabulary preset_source() adds
    bool tied_embeddings = false;  // no output.weight
    double published_total_b = 0, published_active_b = 0;  // vendor figures, billions
};

const std::vector<Preset>& presets();
const Preset* find_preset(std::string_view name);
std::string preset_names();  // "mixtral-8x7b, ..." for help and errors
// The preset's metadata plus a synthetic byte-level BPE vocabulary of n_vocab tokens (the
// tokenizer.* keys), i.e. what a converted file of that model would carry in its header.
std::shared_ptr<MetadataSource> preset_source(const Preset& p);
// The tokenizer.* keys alone: "gpt2" model, pre "default", ids 0-2 <pad> <s> </s> (control),
// the 256 byte-level symbols, a few merges and their results, then filler tokens "<fN>".
std::vector<std::pair<std::string, gguf::Value>> synthetic_vocab(int64_t n_vocab);

}  // namespace moe
