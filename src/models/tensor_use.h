// Checks that a loaded model accounts for every tensor of its file: tensors of layers beyond
// block_count and shared-expert tensors that the metadata turns off are errors (the weights
// would be silently ignored), other unknown tensors are a warning.
#pragma once

#include <string>

#include "core/result.h"
#include "models/model.h"

namespace moe {

// Ok (with `warning` set to one line, or empty), or an error naming the tensor and the key.
Result<void> check_tensor_use(const Model& m, std::string& warning);

}  // namespace moe
