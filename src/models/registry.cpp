// The only list of supported model families.
#include "models/common/bind.h"
#include "models/expert_store.h"
#include "models/families.h"
#include "models/tensor_use.h"

namespace moe {

const std::vector<FamilyEntry>& families() {
    static const std::vector<FamilyEntry> kFamilies = {
        // gguf arch    HF classes                                         loader
        {"llama", "LlamaForCausalLM,MixtralForCausalLM", &load_llama},
        {"qwen2moe", "Qwen2MoeForCausalLM", &load_qwen2moe},
        {"qwen3moe", "Qwen3MoeForCausalLM", &load_qwen3moe},
        {"olmoe", "OlmoeForCausalLM", &load_olmoe},
        {"deepseek2", "DeepseekV2ForCausalLM,DeepseekV3ForCausalLM", &load_deepseek2},
        {"gpt-oss", "GptOssForCausalLM", &load_gpt_oss},
    };
    return kFamilies;
}

std::string supported_architectures() {
    std::string s;
    for (const auto& f : families()) s += (s.empty() ? "" : ", ") + std::string(f.gguf_arch);
    return s;
}

namespace {

Result<std::unique_ptr<Model>> load_family(std::shared_ptr<ModelSource> src, bool plan) {
    const std::string arch = src->architecture();
    if (arch.empty()) return make_error("{}: no general.architecture in the metadata", src->path());
    for (const auto& f : families()) {
        if (arch != f.gguf_arch) continue;
        auto m = std::make_unique<Model>();
        m->config.arch = arch;
        m->config.family = arch;
        m->source = src;
        if (plan) m->plan = std::make_unique<std::vector<PlannedTensor>>();
        auto r = f.load(*src, *m);
        if (!r.ok()) return make_error("{}: {}", src->path(), r.message());
        auto v = validate_common(m->config);
        if (!v.ok()) return make_error("{}: {}", src->path(), v.message());
        if (!plan) {
            auto use = check_tensor_use(*m);
            if (!use.ok()) return make_error("{}: {}", src->path(), use.message());
            m->experts = std::make_shared<ResidentExpertStore>(*m);
        }
        return m;
    }
    return make_error("{}: unknown architecture '{}' (supported: {})", src->path(), arch,
                      supported_architectures());
}

}  // namespace

Result<std::unique_ptr<Model>> load_model(std::shared_ptr<ModelSource> src) {
    return load_family(std::move(src), false);
}

Result<std::unique_ptr<Model>> plan_model(std::shared_ptr<ModelSource> src) {
    return load_family(std::move(src), true);
}

Result<std::unique_ptr<Model>> load_model(const std::string& path) {
    MOE_TRY(auto src, open_model_source(path));
    return load_model(std::move(src));
}

}  // namespace moe
