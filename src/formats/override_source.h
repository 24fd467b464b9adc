// A ModelSource decorator that replaces or adds metadata values, as `--override-kv KEY=TYPE:VALUE`
// does in the upstream tools: the way to correct a converter's wrong hyperparameter without
// rewriting a multi-GB file.
#pragma once

#include <memory>
#include <unordered_map>

#include "formats/model_source.h"

namespace moe {

// Parses "olmoe.attention.layer_norm_rms_epsilon=float:1e-6" (types: int, float, bool, str).
Result<std::pair<std::string, gguf::Value>> parse_override(const std::string& spec);

class OverrideSource final : public ModelSource {
  public:
    OverrideSource(std::shared_ptr<ModelSource> inner,
                   std::vector<std::pair<std::string, gguf::Value>> overrides);
    std::string path() const override { return inner_->path(); }
    std::string format() const override { return inner_->format(); }
    uint64_t file_bytes() const override { return inner_->file_bytes(); }
    const std::vector<std::pair<std::string, gguf::Value>>& metadata() const override {
        return kv_;
    }
    const gguf::Value* find(const std::string& key) const override;
    std::vector<std::string> tensor_names() const override { return inner_->tensor_names(); }
    std::optional<TensorView> tensor(const std::string& name) const override {
        return inner_->tensor(name);
    }

    const ModelSource& inner() const { return *inner_; }

  private:
    std::shared_ptr<ModelSource> inner_;
    std::vector<std::pair<std::string, gguf::Value>> kv_;  // merged, in inner order then new keys
    std::unordered_map<std::string, size_t> index_;
};

// Opens a model source and applies the overrides (each "KEY=TYPE:VALUE").
Result<std::shared_ptr<ModelSource>> open_model_source(const std::string& path,
                                                       const std::vector<std::string>& overrides);

}  // namespace moe
