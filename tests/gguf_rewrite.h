// Test helper: writes a copy of a GGUF file (or any ModelSource) with tensors dropped, replaced or
// added and metadata added, through the project's streaming writer. Used to derive "files people
// have" from the fixtures (an extra rope_freqs, a merged attn_kv_b, licence metadata).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "formats/model_source.h"
#include "gguf/gguf_writer.h"

namespace moe::test {

struct NewTensor {
    std::string name;
    DType dtype = DType::F32;
    Shape shape;
    std::vector<uint8_t> bytes;  // rows * row bytes
};

struct GgufEdit {
    std::function<bool(const std::string&)> drop;         // tensors to leave out (null: none)
    std::vector<NewTensor> add;                           // written after the kept tensors
    std::vector<std::pair<std::string, gguf::Value>> kv;  // added or replacing existing keys
};

inline Result<void> rewrite_gguf(const ModelSource& src, const std::string& out,
                                 const GgufEdit& e) {
    gguf::Writer w;
    for (const auto& [k, v] : src.metadata()) {
        bool replaced = false;
        for (const auto& [nk, nv] : e.kv) replaced = replaced || nk == k;
        if (!replaced) w.add_kv(k, v);
    }
    for (const auto& [k, v] : e.kv) w.add_kv(k, v);
    std::vector<TensorView> views;
    for (const auto& n : src.tensor_names()) {
        if (e.drop && e.drop(n)) continue;
        const TensorView t = *src.tensor(n);
        MOE_TRY_VOID(w.add_tensor(n, t.dtype, t.shape));
        views.push_back(t);
    }
    for (const auto& t : e.add) MOE_TRY_VOID(w.add_tensor(t.name, t.dtype, t.shape));
    MOE_TRY_VOID(w.open(out));
    for (const auto& t : views) MOE_TRY_VOID(w.append(t.data, size_t(t.nbytes())));
    for (const auto& t : e.add) MOE_TRY_VOID(w.append(t.bytes.data(), t.bytes.size()));
    return w.close();
}

inline gguf::Value str_value(std::string s) {
    return gguf::Value{gguf::ValueType::STRING, std::move(s)};
}

}  // namespace moe::test
