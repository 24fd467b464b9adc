#include "formats/override_source.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace moe {

Result<std::pair<std::string, gguf::Value>> parse_override(const std::string& spec) {
    const size_t eq = spec.find('='), colon = spec.find(':', eq == std::string::npos ? 0 : eq);
    if (eq == std::string::npos || eq == 0 || colon == std::string::npos)
        return make_error("override '{}' is not KEY=TYPE:VALUE (types: int, float, bool, str)", spec);
    const std::string key = spec.substr(0, eq), type = spec.substr(eq + 1, colon - eq - 1),
                      val = spec.substr(colon + 1);
    gguf::Value v;
    char* end = nullptr;
    errno = 0;
    if (type == "int") {
        const long long i = std::strtoll(val.c_str(), &end, 10);
        if (val.empty() || *end || errno) return make_error("override '{}': '{}' is not an integer", spec, val);
        v = gguf::Value{gguf::ValueType::I64, int64_t(i)};
    } else if (type == "float") {
        const double d = std::strtod(val.c_str(), &end);
        if (val.empty() || *end || errno || !std::isfinite(d))
            return make_error("override '{}': '{}' is not a finite number", spec, val);
        v = gguf::Value{gguf::ValueType::F64, d};
    } else if (type == "bool") {
        if (val != "true" && val != "false") return make_error("override '{}': bool must be true or false", spec);
        v = gguf::Value{gguf::ValueType::BOOL, val == "true"};
    } else if (type == "str") {
        v = gguf::Value{gguf::ValueType::STRING, val};
    } else {
        return make_error("override '{}': unknown type '{}' (int, float, bool, str)", spec, type);
    }
    return std::make_pair(key, std::move(v));
}

OverrideSource::OverrideSource(std::shared_ptr<ModelSource> inner,
                               std::vector<std::pair<std::string, gguf::Value>> overrides)
    : inner_(std::move(inner)), kv_(inner_->metadata()) {
    for (size_t i = 0; i < kv_.size(); ++i) index_[kv_[i].first] = i;
    for (auto& [k, v] : overrides) {
        auto it = index_.find(k);
        if (it != index_.end()) {
            kv_[it->second].second = std::move(v);
        } else {
            index_[k] = kv_.size();
            kv_.emplace_back(k, std::move(v));
        }
    }
}

const gguf::Value* OverrideSource::find(const std::string& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &kv_[it->second].second;
}

Result<std::shared_ptr<ModelSource>> open_model_source(const std::string& path,
                                                       const std::vector<std::string>& overrides) {
    MOE_TRY(auto src, open_model_source(path));
    if (overrides.empty()) return src;
    std::vector<std::pair<std::string, gguf::Value>> kv;
    for (const auto& o : overrides) {
        MOE_TRY(auto p, parse_override(o));
        kv.push_back(std::move(p));
    }
    return std::shared_ptr<ModelSource>(std::make_shared<OverrideSource>(std::move(src), std::move(kv)));
}

}  // namespace moe
