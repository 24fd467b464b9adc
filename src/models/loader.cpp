#include "models/loader.h"

#include <cmath>

#include "core/check.h"
#include "kernels/ops.h"

namespace moe {

const gguf::Value* HParams::lookup(const std::string& key, bool required) {
    const gguf::Value* v = src_.find(arch_ + "." + key);
    if (!v && required) fail(fmt::format("missing metadata key '{}.{}'", arch_, key));
    return v;
}

int64_t HParams::req_int(const std::string& key, int64_t lo, int64_t hi) {
    const gguf::Value* v = lookup(key, true);
    if (!v) return lo;
    auto i = v->as_int();
    if (!v->is_int() || !i) {
        fail(
            fmt::format("metadata '{}.{}' must be an integer, got {}", arch_, key, v->to_string()));
        return lo;
    }
    if (*i < lo || *i > hi) {
        fail(fmt::format("metadata '{}.{}' = {} is outside [{}, {}]", arch_, key, *i, lo, hi));
        return lo;
    }
    return *i;
}

int64_t HParams::opt_int(const std::string& key, int64_t def, int64_t lo, int64_t hi) {
    return lookup(key, false) ? req_int(key, lo, hi) : def;
}

double HParams::req_float(const std::string& key) {
    const gguf::Value* v = lookup(key, true);
    if (!v) return 0;
    auto f = v->as_float();
    if (!f || !std::isfinite(*f)) {
        fail(fmt::format("metadata '{}.{}' must be a finite number, got {}", arch_, key,
                         v->to_string()));
        return 0;
    }
    return *f;
}

double HParams::opt_float(const std::string& key, double def) {
    return lookup(key, false) ? req_float(key) : def;
}

double HParams::req_positive(const std::string& key) {
    const double v = req_float(key);
    if (ok() && !(v > 0))
        fail(fmt::format("metadata '{}.{}' = {} must be greater than 0", arch_, key, v));
    return v;
}

double HParams::opt_positive(const std::string& key, double def) {
    return lookup(key, false) ? req_positive(key) : def;
}

bool HParams::opt_bool(const std::string& key, bool def) {
    const gguf::Value* v = lookup(key, false);
    if (!v) return def;
    auto b = v->as_bool();
    if (!b) {
        fail(fmt::format("metadata '{}.{}' must be a bool, got {}", arch_, key, v->to_string()));
        return def;
    }
    return *b;
}

std::optional<std::string> HParams::opt_string(const std::string& key) {
    const gguf::Value* v = lookup(key, false);
    if (!v || !v->as_string()) return std::nullopt;
    return *v->as_string();
}

namespace {
Shape strip_leading_ones(Shape s) {
    while (s.rank > 1 && s.dim[0] == 1) {
        for (int i = 1; i < s.rank; ++i) s.dim[i - 1] = s.dim[i];
        s.dim[--s.rank] = 0;
    }
    return s;
}
}  // namespace

TensorView TensorBinder::get(const std::string& name, Shape want, bool required) {
    if (!error_.empty()) return {};
    auto t = src_.tensor(name);
    if (!t && m_.plan) {
        auto [it, inserted] = planned_.try_emplace(name, m_.plan->size());
        if (inserted)
            m_.plan->push_back(PlannedTensor{name, want, required});
        else
            (*m_.plan)[it->second].required = (*m_.plan)[it->second].required || required;
        return {};
    }
    if (!t) {
        if (required) error_ = fmt::format("missing tensor '{}'", name);
        return {};
    }
    // Leading dims of size 1 carry no layout ([1, w] == [w]); quantized files drop them.
    const bool same = strip_leading_ones(t->shape) == strip_leading_ones(want);
    if (!same) {
        error_ =
            fmt::format("tensor '{}' has shape {}, expected {}", name, t->shape.str(), want.str());
        return {};
    }
    if (!ops::weight_type_supported(t->dtype)) {
        error_ = fmt::format("tensor '{}' has type {}, which is not supported", name,
                             dtype_name(t->dtype));
        return {};
    }
    ++n_bound_;
    m_.bound_names.push_back(name);
    TensorView v = *t;
    v.shape = want;  // same layout; callers index by the shape they asked for
    return v;
}

TensorView Model::own_bytes(DType t, Shape shape, std::vector<uint8_t> bytes) {
    MOE_CHECK(int64_t(bytes.size()) == shape.rows() * dtype_row_bytes(t, shape.last()),
              "own_bytes: {} bytes for {} {}", bytes.size(), dtype_name(t), shape.str());
    owned_bytes_.push_back(std::make_unique<std::vector<uint8_t>>(std::move(bytes)));
    return TensorView{t, shape, owned_bytes_.back()->data()};
}

F32Vec Model::own_f32(const TensorView& t) {
    if (t.empty()) return {};
    TensorView v = own_f32_tensor(t);
    return F32Vec{static_cast<const float*>(v.data), t.shape.numel()};
}

TensorView Model::own_f32_tensor(const TensorView& t) {
    if (t.empty()) return {};
    auto buf = std::make_unique<std::vector<float>>(size_t(t.shape.numel()));
    const int64_t rows = t.shape.rows(), w = t.shape.last();
    for (int64_t r = 0; r < rows; ++r)
        ops::dequantize_row(t.dtype, t.row(r), buf->data() + r * w, w);
    TensorView v{DType::F32, t.shape, buf->data()};
    owned_.push_back(std::move(buf));
    return v;
}

}  // namespace moe
