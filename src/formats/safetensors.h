// Safetensors reader: memory-mapped, zero copy. Format: an 8-byte little-endian header length N,
// N bytes of JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"}),
// then the data section; offsets are relative to the start of the data section.
// Spec: https://github.com/huggingface/safetensors (README, "Format").
// Every length, shape and offset from the file is checked before use: a truncated or hostile file
// yields an Error, never a crash or a huge allocation. Only F32, F16 and BF16 are accepted.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/mapped_file.h"
#include "core/result.h"
#include "core/tensor.h"

namespace moe {

struct SafetensorsTensor {
    std::string name;
    DType dtype = DType::F32;
    Shape shape;                    // outermost first, as stored (torch order)
    const uint8_t* data = nullptr;  // into the mapping
    uint64_t nbytes = 0;

    TensorView view() const { return TensorView{dtype, shape, data}; }
};

class SafetensorsFile {
  public:
    static Result<std::shared_ptr<SafetensorsFile>> open(const std::string& path);  // weight_memory()
    static Result<std::shared_ptr<SafetensorsFile>> open(const std::string& path, WeightMemory mem);
    static Result<std::shared_ptr<SafetensorsFile>> parse(std::shared_ptr<MappedFile> mapped);

    const std::string& path() const { return mapped_->path(); }
    size_t file_size() const { return mapped_->size(); }
    const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
    const SafetensorsTensor* find(const std::string& name) const;

  private:
    std::shared_ptr<MappedFile> mapped_;
    std::vector<SafetensorsTensor> tensors_;
    std::unordered_map<std::string, size_t> index_;
};

// The tensors of a checkpoint folder: "model.safetensors.index.json" (weight_map) when present,
// otherwise every "*.safetensors" in the folder. A tensor name may occur in one file only.
class SafetensorsSet {
  public:
    static Result<std::shared_ptr<SafetensorsSet>> open_folder(const std::string& dir);  // weight_memory()
    static Result<std::shared_ptr<SafetensorsSet>> open_folder(const std::string& dir,
                                                               WeightMemory mem);

    const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
    // All tensor names, sorted.
    std::vector<std::string> names() const;
    const SafetensorsTensor* find(const std::string& name) const;
    uint64_t total_bytes() const;

  private:
    std::vector<std::shared_ptr<SafetensorsFile>> files_;
    std::unordered_map<std::string, const SafetensorsTensor*> index_;
};

}  // namespace moe
