#include "models/tensor_use.h"

#include <fmt/format.h>

#include <cstdlib>
#include <unordered_set>

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

Result<void> check_tensor_use(const Model& m, std::string& warning) {
    warning.clear();
    if (!m.source) return {};
    const std::unordered_set<std::string> bound(m.bound_names.begin(), m.bound_names.end());
    const int n_layer = m.config.n_layer;
    size_t n_unused = 0;
    std::string first_unused;
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
        if (n_unused++ == 0) first_unused = name;
    }
    if (n_unused > 0)
        warning = fmt::format("{} tensor(s) of the file are not used by the {} model (first: '{}')",
                              n_unused, m.config.arch, first_unused);
    return {};
}

}  // namespace moe
