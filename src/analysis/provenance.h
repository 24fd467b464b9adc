// Licence and provenance of a model file ("can we legally use it?"): the GGUF general.* keys
// that name the licence, the author and the base models, plus the tokenizer and chat-template
// variants the file carries. Nothing is inferred: a key the file lacks is reported missing.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "formats/model_source.h"

namespace moe {

struct BaseModel {
    std::string name, organization, version, repo_url;  // empty when absent
};

struct Provenance {
    std::optional<std::string> license;       // general.license (an SPDX id or "other")
    std::optional<std::string> license_name;  // general.license.name
    std::optional<std::string> license_link;  // general.license.link
    std::optional<std::string> author, organization, quantized_by, size_label, finetune, repo_url,
        source_repo;                           // general.author, .organization, .quantized_by, ...
    std::vector<BaseModel> base_models;        // general.base_model.{i}.*
    std::string tokenizer;                     // "gpt2 (pre llama-bpe)"; empty: none
    bool chat_template = false;                // tokenizer.chat_template
    std::vector<std::string> named_templates;  // tokenizer.chat_template.NAME (tool_use, rag, ...)
};

Provenance read_provenance(const ModelSource& src);

// Lines for `inspect` (each without a trailing newline), and the JSON object of `inspect --json`.
std::vector<std::string> provenance_lines(const Provenance& p);
nlohmann::json provenance_json(const Provenance& p);

}  // namespace moe
