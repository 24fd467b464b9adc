// Placeholder until the safetensors adapter lands: reports the folder as unsupported.
#include "formats/hf_source.h"

namespace moe {

Result<std::shared_ptr<ModelSource>> open_hf_folder(const std::string& dir) {
    return make_error("'{}' is a directory; Hugging Face folders are not supported yet", dir);
}

}  // namespace moe
