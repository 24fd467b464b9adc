// Helpers family loaders share: typed hyperparameter lookup with errors that name the key, and
// tensor binding that checks presence, shape and type and names the tensor on failure.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "formats/model_source.h"
#include "models/model.h"

namespace moe {

// Reads "{arch}.{key}" hyperparameters; the first problem is kept and reported by error().
class HParams {
  public:
    HParams(const ModelSource& src, std::string arch) : src_(src), arch_(std::move(arch)) {}

    // Required integer in [lo, hi].
    int64_t req_int(const std::string& key, int64_t lo, int64_t hi);
    int64_t opt_int(const std::string& key, int64_t def, int64_t lo, int64_t hi);
    double req_float(const std::string& key);
    double opt_float(const std::string& key, double def);
    // Finite and > 0: epsilons, RoPE bases and factors, YaRN betas, scales. A value of 0 or
    // below passes a finiteness check and then turns every logit into NaN.
    double req_positive(const std::string& key);
    double opt_positive(const std::string& key, double def);
    bool opt_bool(const std::string& key, bool def);
    std::optional<std::string> opt_string(const std::string& key);
    bool has(const std::string& key) const { return src_.find(arch_ + "." + key) != nullptr; }

    void fail(std::string msg) {
        if (error_.empty()) error_ = std::move(msg);
    }
    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }

  private:
    const gguf::Value* lookup(const std::string& key, bool required);
    const ModelSource& src_;
    std::string arch_;
    std::string error_;
};

// Binds named tensors of a source into a Model, checking shapes (outermost first).
class TensorBinder {
  public:
    TensorBinder(const ModelSource& src, Model& m) : src_(src), m_(m) {}

    TensorView req(const std::string& name, Shape want) { return get(name, want, true); }
    TensorView opt(const std::string& name, Shape want) { return get(name, want, false); }
    F32Vec req_f32(const std::string& name, Shape want) { return m_.own_f32(req(name, want)); }
    F32Vec opt_f32(const std::string& name, Shape want) { return m_.own_f32(opt(name, want)); }
    // Biases of experts etc.: an owned f32 copy with the given shape.
    TensorView opt_f32_tensor(const std::string& name, Shape want) {
        return m_.own_f32_tensor(opt(name, want));
    }

    bool has(const std::string& name) const { return src_.tensor(name).has_value(); }
    Model& model() { return m_; }
    void fail(std::string msg) {
        if (error_.empty()) error_ = std::move(msg);
    }
    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    int n_bound() const { return n_bound_; }

  private:
    TensorView get(const std::string& name, Shape want, bool required);
    const ModelSource& src_;
    Model& m_;
    std::string error_;
    int n_bound_ = 0;
    // Plan mode: index of each planned name in m_.plan, so a hostile block_count (4096 layers of
    // missing tensors) costs a hash lookup per name, not a scan of everything planned so far.
    std::unordered_map<std::string, size_t> planned_;
};

// "blk.{il}.{name}"
inline std::string blk(int il, const char* name) {
    return "blk." + std::to_string(il) + "." + name;
}

}  // namespace moe
