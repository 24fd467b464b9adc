#include "analysis/provenance.h"

#include <fmt/format.h>

namespace moe {

namespace {

// A string value, or the items of a string array joined (some files store general.license as
// an array of ids); absent or empty: nullopt.
std::optional<std::string> text_of(const ModelSource& src, const std::string& key) {
    const gguf::Value* v = src.find(key);
    if (!v) return std::nullopt;
    if (const std::string* s = v->as_string()) {
        if (s->empty()) return std::nullopt;
        return *s;
    }
    if (const gguf::Array* a = v->as_array()) {
        std::string out;
        for (const auto& item : a->items)
            if (const std::string* s = item.as_string()) out += (out.empty() ? "" : ", ") + *s;
        if (!out.empty()) return out;
    }
    return std::nullopt;
}

constexpr int kMaxBaseModels = 64;  // bounds a count read from the file

}  // namespace

Provenance read_provenance(const ModelSource& src) {
    Provenance p;
    p.license = text_of(src, "general.license");
    p.license_name = text_of(src, "general.license.name");
    p.license_link = text_of(src, "general.license.link");
    p.author = text_of(src, "general.author");
    p.organization = text_of(src, "general.organization");
    p.quantized_by = text_of(src, "general.quantized_by");
    p.size_label = text_of(src, "general.size_label");
    p.finetune = text_of(src, "general.finetune");
    p.repo_url = text_of(src, "general.repo_url");
    p.source_repo = text_of(src, "general.source.repo_url");
    if (!p.source_repo) p.source_repo = text_of(src, "general.source.huggingface.repository");
    const int64_t n =
        std::clamp<int64_t>(src.get_int("general.base_model.count").value_or(0), 0, kMaxBaseModels);
    for (int64_t i = 0; i < n; ++i) {
        const std::string k = fmt::format("general.base_model.{}.", i);
        BaseModel b;
        b.name = text_of(src, k + "name").value_or("");
        b.organization = text_of(src, k + "organization").value_or("");
        b.version = text_of(src, k + "version").value_or("");
        b.repo_url = text_of(src, k + "repo_url").value_or("");
        if (!b.name.empty() || !b.repo_url.empty()) p.base_models.push_back(std::move(b));
    }
    if (auto model = text_of(src, "tokenizer.ggml.model")) {
        p.tokenizer = *model;
        if (auto pre = text_of(src, "tokenizer.ggml.pre")) p.tokenizer += " (pre " + *pre + ")";
    }
    p.chat_template = src.get_string("tokenizer.chat_template").has_value();
    const std::string prefix = "tokenizer.chat_template.";
    for (const auto& [key, value] : src.metadata())
        if (key.starts_with(prefix) && value.as_string())
            p.named_templates.push_back(key.substr(prefix.size()));
    return p;
}

std::vector<std::string> provenance_lines(const Provenance& p) {
    std::vector<std::string> out;
    if (p.license) {
        std::string l = *p.license;
        if (p.license_name && *p.license_name != *p.license) l += " (" + *p.license_name + ")";
        if (p.license_link) l += "  " + *p.license_link;
        out.push_back("  licence        " + l + "  -- read its terms before use");
    } else {
        out.push_back(
            "  licence        not stated in the file (no general.license): check the model card "
            "of its source before use");
    }
    auto line = [&](const char* label, const std::optional<std::string>& v) {
        out.push_back(fmt::format("  {:<14} {}", label, v ? *v : "not stated"));
    };
    line("author", p.author ? p.author : p.organization);
    if (p.base_models.empty()) {
        out.push_back("  base model     not stated (no general.base_model.*)");
    } else {
        for (const auto& b : p.base_models) {
            std::string s = b.name.empty() ? b.repo_url : b.name;
            if (!b.version.empty()) s += " " + b.version;
            if (!b.organization.empty()) s += " by " + b.organization;
            if (!b.name.empty() && !b.repo_url.empty()) s += "  " + b.repo_url;
            out.push_back("  base model     " + s);
        }
    }
    line("source", p.source_repo ? p.source_repo : p.repo_url);
    line("quantized by", p.quantized_by);
    line("size label", p.size_label);
    if (p.finetune) line("finetune", p.finetune);
    std::string chat = p.chat_template ? "yes" : "none (the family's built-in format is used)";
    if (!p.named_templates.empty()) {
        chat += ", named:";
        for (const auto& n : p.named_templates) chat += " " + n;
    }
    out.push_back("  tokenizer      " + (p.tokenizer.empty() ? std::string("none") : p.tokenizer));
    out.push_back("  chat template  " + chat);
    return out;
}

nlohmann::json provenance_json(const Provenance& p) {
    auto opt = [](const std::optional<std::string>& v) {
        return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    };
    nlohmann::json bases = nlohmann::json::array();
    for (const auto& b : p.base_models)
        bases.push_back({{"name", b.name},
                         {"organization", b.organization},
                         {"version", b.version},
                         {"repo_url", b.repo_url}});
    return {{"license", opt(p.license)},
            {"license_name", opt(p.license_name)},
            {"license_link", opt(p.license_link)},
            {"license_stated", p.license.has_value()},
            {"author", opt(p.author)},
            {"organization", opt(p.organization)},
            {"quantized_by", opt(p.quantized_by)},
            {"size_label", opt(p.size_label)},
            {"finetune", opt(p.finetune)},
            {"repo_url", opt(p.repo_url)},
            {"source_repo", opt(p.source_repo)},
            {"base_models", bases},
            {"tokenizer", p.tokenizer},
            {"chat_template", p.chat_template},
            {"named_chat_templates", p.named_templates}};
}

}  // namespace moe
