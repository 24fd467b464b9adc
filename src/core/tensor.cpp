#include "core/tensor.h"

#include <fmt/format.h>

namespace moe {

std::string Shape::str() const {
    std::string s = "[";
    for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dim[i]);
    return s + "]";
}

TensorView TensorView::slice(int64_t i) const {
    TensorView v;
    v.dtype = dtype;
    v.shape.rank = shape.rank - 1;
    for (int d = 1; d < shape.rank; ++d) v.shape.dim[d - 1] = shape.dim[d];
    v.data = static_cast<const uint8_t*>(data) + i * v.nbytes();
    return v;
}

}  // namespace moe
