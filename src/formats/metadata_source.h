// A ModelSource made of metadata only (no tensors): presets of real models for `synth` and
// `inspect --like`, and tests that need hyperparameters without weights.
#pragma once

#include <unordered_map>

#include "formats/model_source.h"

namespace moe {

class MetadataSource final : public ModelSource {
public:
    MetadataSource(std::string name, std::vector<std::pair<std::string, gguf::Value>> kv)
        : name_(std::move(name)), kv_(std::move(kv)) {
        for (size_t i = 0; i < kv_.size(); ++i) index_[kv_[i].first] = i;
    }
    std::string path() const override { return name_; }
    std::string format() const override { return "metadata"; }
    uint64_t file_bytes() const override { return 0; }
    const std::vector<std::pair<std::string, gguf::Value>>& metadata() const override { return kv_; }
    const gguf::Value* find(const std::string& key) const override {
        auto it = index_.find(key);
        return it == index_.end() ? nullptr : &kv_[it->second].second;
    }
    std::vector<std::string> tensor_names() const override { return {}; }
    std::optional<TensorView> tensor(const std::string&) const override { return std::nullopt; }

private:
    std::string name_;
    std::vector<std::pair<std::string, gguf::Value>> kv_;
    std::unordered_map<std::string, size_t> index_;
};

// Value constructors for building metadata by hand.
inline gguf::Value meta_u32(uint64_t v) { return gguf::Value{gguf::ValueType::U32, v}; }
inline gguf::Value meta_i32(int64_t v) { return gguf::Value{gguf::ValueType::I32, v}; }
inline gguf::Value meta_f32(double v) { return gguf::Value{gguf::ValueType::F32, v}; }
inline gguf::Value meta_bool(bool v) { return gguf::Value{gguf::ValueType::BOOL, v}; }
inline gguf::Value meta_str(std::string v) { return gguf::Value{gguf::ValueType::STRING, std::move(v)}; }

}  // namespace moe
