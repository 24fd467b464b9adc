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
    bool tied_embeddings = false;  // no output.weight
    double published_total_b = 0, published_active_b = 0;  // vendor figures, billions
};

const std::vector<Preset>& presets();
const Preset* find_preset(std::string_view name);
std::string preset_names();  // "mixtral-8x7b, ..." for help and errors
std::shared_ptr<MetadataSource> preset_source(const Preset& p);

}  // namespace moe
