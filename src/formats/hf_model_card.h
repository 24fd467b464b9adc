// The licence and base models of a Hugging Face folder, from the YAML front matter of its
// README.md (the model card), as GGUF general.* keys (the upstream converter fills the same keys
// from the same place). Only the top-level keys it needs are read: license, license_name,
// license_link, base_model (a string or a list).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "gguf/gguf.h"

namespace moe {

// Appends general.license* and general.base_model.* for the model card of `dir`, if it has one
// with those keys. A missing or unreadable card adds nothing (a card is documentation, not
// weights; `inspect` then reports the licence as not stated).
void append_hf_model_card(const std::string& dir,
                          std::vector<std::pair<std::string, gguf::Value>>& kv);

}  // namespace moe
