// Loaders of each model family (one file each); registry.cpp is the only list of them.
#pragma once

#include "formats/model_source.h"
#include "models/model.h"

namespace moe {

Result<void> load_llama(const ModelSource& src, Model& m);     // llama.cpp (+ Mixtral)
Result<void> load_qwen2moe(const ModelSource& src, Model& m);  // qwen2moe.cpp
Result<void> load_qwen3moe(const ModelSource& src, Model& m);  // qwen3moe.cpp
Result<void> load_olmoe(const ModelSource& src, Model& m);     // olmoe.cpp
Result<void> load_deepseek2(const ModelSource& src, Model& m); // deepseek2.cpp (V2, V3, R1)
Result<void> load_gpt_oss(const ModelSource& src, Model& m);   // gpt_oss.cpp

struct FamilyEntry {
    const char* gguf_arch;
    const char* hf_classes;  // comma-separated Hugging Face architectures
    Result<void> (*load)(const ModelSource&, Model&);
};

// The registry: every supported family.
const std::vector<FamilyEntry>& families();
std::string supported_architectures();  // "llama, qwen2moe, ..."

}  // namespace moe
