// ModelSource: one interface over every weight format. Metadata uses GGUF keys and value types
// ("llama.block_count", "tokenizer.ggml.tokens"), tensors use canonical GGUF names
// ("blk.3.ffn_gate_exps.weight") and outermost-first shapes. A Hugging Face folder is adapted to
// the same keys and names at load time, so nothing downstream knows which format it came from.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/tensor.h"
#include "gguf/gguf.h"

namespace moe {

class ModelSource {
public:
    virtual ~ModelSource() = default;

    virtual std::string path() const = 0;
    virtual std::string format() const = 0;  // "gguf" | "safetensors"
    virtual uint64_t file_bytes() const = 0;  // bytes on disk

    // Metadata entries in a stable order, and lookup by key.
    virtual const std::vector<std::pair<std::string, gguf::Value>>& metadata() const = 0;
    virtual const gguf::Value* find(const std::string& key) const = 0;

    virtual std::vector<std::string> tensor_names() const = 0;
    virtual std::optional<TensorView> tensor(const std::string& name) const = 0;

    // Typed metadata getters.
    std::optional<int64_t> get_int(const std::string& key) const;
    std::optional<double> get_float(const std::string& key) const;
    std::optional<bool> get_bool(const std::string& key) const;
    std::optional<std::string> get_string(const std::string& key) const;
    const gguf::Array* get_array(const std::string& key) const;
    std::string architecture() const { return get_string("general.architecture").value_or(""); }
};

// Opens a GGUF file or a Hugging Face folder (config.json + *.safetensors).
Result<std::shared_ptr<ModelSource>> open_model_source(const std::string& path);  // weight_memory()
// `mem`: how this model's weight files are held (a per-model choice, e.g. serve -m PATH,mmap).
Result<std::shared_ptr<ModelSource>> open_model_source(const std::string& path, WeightMemory mem);

// A GGUF file as a ModelSource (zero copy: tensors are views into the mapping).
class GgufSource final : public ModelSource {
public:
    explicit GgufSource(std::shared_ptr<gguf::File> f) : file_(std::move(f)) {}
    std::string path() const override { return file_->path(); }
    std::string format() const override { return "gguf"; }
    uint64_t file_bytes() const override { return file_->file_size(); }
    const std::vector<std::pair<std::string, gguf::Value>>& metadata() const override {
        return file_->metadata();
    }
    const gguf::Value* find(const std::string& key) const override { return file_->find(key); }
    std::vector<std::string> tensor_names() const override;
    std::optional<TensorView> tensor(const std::string& name) const override;
    const gguf::File& file() const { return *file_; }

private:
    std::shared_ptr<gguf::File> file_;
};

}  // namespace moe
