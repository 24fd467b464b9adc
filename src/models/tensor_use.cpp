#include "models/tensor_use.h"

#include <fmt/format.h>

#include <cstdlib>
#include <unordered_set>
#include <vector>

#include "formats/model_source.h"

namespace moe {
namespace {

// The layer index of "blk.N.rest", or -1.
int64_t layer_of(const std::string& name) {
    if (name.rfind("blk.", 0) != 0) return -1;
    const size_t dot = name.find('.', 4);
    if (dot == std::string::npos || dot == 4 || dot > 12) return -1;
    int64_t il = 0;
    for (size_t k = 4; k < dot; ++k) {
        if (name[k] < '0' || name[k] > '9') return -1;
        il = il * 10 + (name[k] - '0');
    }
    return il;
}

}  // namespace

Result<void> check_tensor_use(const Model& m) {
    if (!m.source) return {};
    const std::unordered_set<std::string> bound(m.bound_names.begin(), m.bound_names.end());
    const int n_layer = m.config.n_layer;
    std::vector<std::string> unused;
    for (const std::string& name : m.source->tensor_names()) {
        if (name.empty()) return make_error("a tensor has an empty name");
        if (bound.count(name)) continue;
        const int64_t il = layer_of(name);
        if (il >= n_layer)
            return make_error("tensor '{}' belongs to layer {}, but {}.block_count is {}", name, il,
                              m.config.arch, n_layer);
        if (name.find("_shexp") != std::string::npos)
            return make_error(
                "tensor '{}' is a shared-expert weight, but the metadata gives the "
                "model no shared expert ({}.expert_shared_count or "
                "expert_shared_feed_forward_length is 0 or missing)",
                name, m.config.arch);
        unused.push_back(name);
    }
    if (unused.empty()) return {};
    std::string list;
    for (size_t k = 0; k < unused.size() && k < 5; ++k) list += (k ? ", '" : "'") + unused[k] + "'";
    if (unused.size() > 5) list += fmt::format(" and {} more", unused.size() - 5);
    return make_error(
        "{} tensor(s) that the {} loader does not use: {} (a tensor can change the math, so the "
        "file is refused rather than run without it)",
        unused.size(), m.config.arch, list);
}

}  // namespace moe
