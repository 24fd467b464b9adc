// Access to the shared reference fixtures (../shared/fixtures): Hugging Face float64 logits,
// reference routing, greedy sequences, and the upstream engine's error on each file.
#pragma once

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moe::test {

// A per-process temporary path, so concurrent runs of the suite never share a file.
inline std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("moeinfer_" + std::to_string(::getpid()) + "_" + name))
        .string();
}

inline std::string fixtures_dir() {
    return MOE_FIXTURES_DIR;
}
inline std::string model_dir(const std::string& name) {
    return fixtures_dir() + "/models/" + name;
}
inline std::string gguf_path(const std::string& name, const std::string& type) {
    return fixtures_dir() + "/models/" + name + "-" + type + ".gguf";
}

inline nlohmann::json load_ref(const std::string& name) {
    std::ifstream f(model_dir(name) + "/ref.json");
    return nlohmann::json::parse(f);
}

inline std::vector<float> read_f32(const std::string& path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) return {};
    const auto n = size_t(f.tellg()) / 4;
    std::vector<float> v(n);
    f.seekg(0);
    f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 4));
    return v;
}

// sqrt(mean((got-ref)^2)) / sqrt(mean(ref^2)), the fixtures README's measure.
inline double rms_rel(const std::vector<float>& got, const std::vector<float>& ref) {
    double e = 0, r = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        e += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
        r += double(ref[i]) * ref[i];
    }
    return std::sqrt(e / double(ref.size())) / std::sqrt(r / double(ref.size()));
}

// max|got-ref| / max|ref|; infinite when the sizes differ or a difference is NaN (std::max
// would pass over a NaN and let an all-NaN result through).
inline double max_rel(const std::vector<float>& got, const std::vector<float>& ref) {
    if (got.size() != ref.size()) return std::numeric_limits<double>::infinity();
    double e = 0, r = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double d = std::abs(double(got[i]) - ref[i]);
        if (std::isnan(d)) return std::numeric_limits<double>::infinity();
        e = std::max(e, d);
        r = std::max(r, std::abs(double(ref[i])));
    }
    return e / r;
}

// The upstream engine's rms_rel on a file, from llamacpp_errors.txt (negative if not listed).
inline double upstream_rms_rel(const std::string& name, const std::string& type) {
    std::ifstream f(fixtures_dir() + "/llamacpp_errors.txt");
    std::string n, t, rms, top1;
    while (f >> n >> t >> rms >> top1)
        if (n == name && t == type) return std::stod(rms.substr(rms.find('=') + 1));
    return -1;
}

}  // namespace moe::test
