// GGUF reader (v2 and v3): memory-mapped, zero-copy tensor views, every metadata value type.
// Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
// Every length, count and offset read from the file is checked against the file's size before
// use, so a truncated or hostile file yields an Error, never a crash or a huge allocation.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "core/result.h"
#include "core/tensor.h"

namespace moe::gguf {

enum class ValueType : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
};
std::string_view value_type_name(ValueType t);

struct Value;
struct Array {
    ValueType elem_type = ValueType::U8;
    std::vector<Value> items;
};

struct Value {
    ValueType type = ValueType::U8;
    std::variant<uint64_t, int64_t, double, bool, std::string, Array> v;

    bool is_int() const;
    bool is_float() const { return type == ValueType::F32 || type == ValueType::F64; }
    std::optional<int64_t> as_int() const;   // any integer type (u64 above INT64_MAX: nullopt)
    std::optional<double> as_float() const;  // float or integer types
    std::optional<bool> as_bool() const;
    const std::string* as_string() const;
    const Array* as_array() const;
    std::string to_string(size_t max_items = 8) const;  // for inspect/debug output
};

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    Shape shape;          // outermost first (ggml ne[] reversed)
    uint64_t offset = 0;  // relative to the data section
    uint64_t nbytes = 0;
};

class File {
  public:
    static Result<std::shared_ptr<File>> open(const std::string& path);  // weight_memory()
    static Result<std::shared_ptr<File>> open(const std::string& path, WeightMemory mem);
    static Result<std::shared_ptr<File>> parse(std::shared_ptr<MappedFile> mapped);

    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }
    const std::string& path() const { return mapped_->path(); }
    size_t file_size() const { return mapped_->size(); }
    bool loaded() const { return mapped_->loaded(); }  // copied into memory (else mapped)
    const MappedFile& mapped() const { return *mapped_; }

    // Metadata, in file order.
    const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
    const Value* find(const std::string& key) const;
    std::optional<int64_t> get_int(const std::string& key) const;
    std::optional<double> get_float(const std::string& key) const;
    std::optional<bool> get_bool(const std::string& key) const;
    std::optional<std::string> get_string(const std::string& key) const;
    const Array* get_array(const std::string& key) const;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(const std::string& name) const;
    TensorView view(const TensorInfo& t) const;

  private:
    std::shared_ptr<MappedFile> mapped_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kv_;
    std::unordered_map<std::string, size_t> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace moe::gguf
