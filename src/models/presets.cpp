// The table of presets. Hyperparameters from each model's published config.json.
#include "models/presets.h"

namespace moe {

const std::vector<Preset>& presets() {
    static const std::vector<Preset> kPresets = [] {
        std::vector<Preset> v;
        {
            Preset p;
            p.name = "olmoe-1b-7b";
            p.hf_repo = "allenai/OLMoE-1B-7B-0924";
            p.arch = "olmoe";
            p.published_total_b = 6.9;
            p.published_active_b = 1.3;
            p.metadata = {
                {"general.architecture", meta_str("olmoe")},
                {"general.name", meta_str("OLMoE-1B-7B (synthetic)")},
                {"olmoe.vocab_size", meta_u32(50304)},
                {"olmoe.context_length", meta_u32(4096)},
                {"olmoe.embedding_length", meta_u32(2048)},
                {"olmoe.block_count", meta_u32(16)},
                {"olmoe.feed_forward_length", meta_u32(1024)},
                {"olmoe.attention.head_count", meta_u32(16)},
                {"olmoe.attention.head_count_kv", meta_u32(16)},
                {"olmoe.rope.freq_base", meta_f32(10000.0)},
                {"olmoe.attention.layer_norm_rms_epsilon", meta_f32(1e-5)},
                {"olmoe.expert_count", meta_u32(64)},
                {"olmoe.expert_used_count", meta_u32(8)},
            };
            v.push_back(std::move(p));
        }
        return v;
    }();
    return kPresets;
}

const Preset* find_preset(std::string_view name) {
    for (const auto& p : presets())
        if (p.name == name) return &p;
    return nullptr;
}

std::string preset_names() {
    std::string s;
    for (const auto& p : presets()) s += (s.empty() ? "" : ", ") + p.name;
    return s;
}

std::shared_ptr<MetadataSource> preset_source(const Preset& p) {
    return std::make_shared<MetadataSource>("preset:" + p.name, p.metadata);
}

}  // namespace moe
