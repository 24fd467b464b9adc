// Hugging Face folders (config.json + *.safetensors, sharded or not) as a ModelSource.
#pragma once

#include "formats/model_source.h"

namespace moe {

Result<std::shared_ptr<ModelSource>> open_hf_folder(const std::string& dir);  // weight_memory()
Result<std::shared_ptr<ModelSource>> open_hf_folder(const std::string& dir, WeightMemory mem);

}  // namespace moe
