// Checks that a loaded model accounts for every tensor of its file. A tensor no loader binds may
// change the math (as Llama 3's rope_freqs does), so the file is refused rather than run without
// it -- as the upstream engine refuses a tensor count it does not expect. Tensors of layers beyond
// block_count and shared-expert tensors that the metadata turns off get messages naming the key.
#pragma once

#include <string>

#include "core/result.h"
#include "models/model.h"

namespace moe {

// Ok, or an error naming the tensor (and the key, where one explains it).
Result<void> check_tensor_use(const Model& m);

}  // namespace moe
