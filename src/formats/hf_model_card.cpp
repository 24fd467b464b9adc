#include "formats/hf_model_card.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace moe {

namespace {

constexpr size_t kMaxCardBytes = 1 << 20;  // front matter is at the top; never read more
constexpr size_t kMaxBaseModels = 64;

std::string trim(std::string s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    const auto e = s.find_last_not_of(" \t\r");
    s = s.substr(b, e - b + 1);
    if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
        s = s.substr(1, s.size() - 2);
    return s;
}

gguf::Value str(std::string s) {
    return gguf::Value{gguf::ValueType::STRING, std::move(s)};
}

// Top-level "key: value" pairs of the front matter; "key:" followed by "- item" lines (or
// "key: [a, b]") gives the items joined by '\n'.
std::vector<std::pair<std::string, std::string>> front_matter(std::istream& in) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string line;
    if (!std::getline(in, line) || trim(line) != "---") return out;
    size_t read = 0;
    bool in_list = false;  // the last key had no inline value: "- item" lines follow
    while (std::getline(in, line) && (read += line.size()) < kMaxCardBytes) {
        const std::string t = trim(line);
        if (t == "---") break;
        if (t.starts_with("- ")) {
            if (in_list)
                out.back().second += (out.back().second.empty() ? "" : "\n") + trim(t.substr(2));
            continue;
        }
        if (line.empty() || line[0] == ' ' || line[0] == '#') continue;
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string value = trim(line.substr(colon + 1));
        if (value.size() >= 2 && value.front() == '[' && value.back() == ']') {
            std::string items, item;
            std::istringstream ss(value.substr(1, value.size() - 2));
            while (std::getline(ss, item, ','))
                if (!trim(item).empty()) items += (items.empty() ? "" : "\n") + trim(item);
            value = items;
        }
        in_list = value.empty();
        out.emplace_back(trim(line.substr(0, colon)), value);
    }
    return out;
}

}  // namespace

void append_hf_model_card(const std::string& dir,
                          std::vector<std::pair<std::string, gguf::Value>>& kv) {
    std::ifstream in(std::filesystem::path(dir) / "README.md");
    if (!in) return;
    for (const auto& [key, value] : front_matter(in)) {
        if (value.empty()) continue;
        if (key == "license") kv.emplace_back("general.license", str(value));
        if (key == "license_name") kv.emplace_back("general.license.name", str(value));
        if (key == "license_link") kv.emplace_back("general.license.link", str(value));
        if (key != "base_model") continue;
        std::vector<std::string> ids;
        std::istringstream ss(value);
        for (std::string id; std::getline(ss, id) && ids.size() < kMaxBaseModels;)
            ids.push_back(id);
        kv.emplace_back("general.base_model.count",
                        gguf::Value{gguf::ValueType::U32, uint64_t(ids.size())});
        for (size_t i = 0; i < ids.size(); ++i) {
            // "org/name" is a Hugging Face repository id.
            const auto slash = ids[i].find('/');
            const std::string k = fmt::format("general.base_model.{}.", i);
            kv.emplace_back(k + "name",
                            str(slash == std::string::npos ? ids[i] : ids[i].substr(slash + 1)));
            if (slash != std::string::npos) {
                kv.emplace_back(k + "organization", str(ids[i].substr(0, slash)));
                kv.emplace_back(k + "repo_url", str("https://huggingface.co/" + ids[i]));
            }
        }
    }
}

}  // namespace moe
