#include "formats/model_source.h"

#include <sys/stat.h>

#include "formats/hf_source.h"

namespace moe {

std::optional<int64_t> ModelSource::get_int(const std::string& key) const {
    const gguf::Value* v = find(key);
    return v ? v->as_int() : std::nullopt;
}
std::optional<double> ModelSource::get_float(const std::string& key) const {
    const gguf::Value* v = find(key);
    return v ? v->as_float() : std::nullopt;
}
std::optional<bool> ModelSource::get_bool(const std::string& key) const {
    const gguf::Value* v = find(key);
    return v ? v->as_bool() : std::nullopt;
}
std::optional<std::string> ModelSource::get_string(const std::string& key) const {
    const gguf::Value* v = find(key);
    if (!v || !v->as_string()) return std::nullopt;
    return *v->as_string();
}
const gguf::Array* ModelSource::get_array(const std::string& key) const {
    const gguf::Value* v = find(key);
    return v ? v->as_array() : nullptr;
}

std::vector<std::string> GgufSource::tensor_names() const {
    std::vector<std::string> names;
    names.reserve(file_->tensors().size());
    for (const auto& t : file_->tensors()) names.push_back(t.name);
    return names;
}

std::optional<TensorView> GgufSource::tensor(const std::string& name) const {
    const gguf::TensorInfo* t = file_->find_tensor(name);
    if (!t) return std::nullopt;
    return file_->view(*t);
}

Result<std::shared_ptr<ModelSource>> open_model_source(const std::string& path) {
    return open_model_source(path, weight_memory());
}

Result<std::shared_ptr<ModelSource>> open_model_source(const std::string& path, WeightMemory mem) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return make_error("cannot open '{}': no such file or directory", path);
    if (S_ISDIR(st.st_mode)) return open_hf_folder(path, mem);
    MOE_TRY(auto file, gguf::File::open(path, mem));
    return std::shared_ptr<ModelSource>(std::make_shared<GgufSource>(std::move(file)));
}

}  // namespace moe
