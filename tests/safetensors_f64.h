// Reads an all-F32 Hugging Face model.safetensors into float64 vectors by tensor name, for the
// tests' independent references (the engine's own safetensors reader is not used).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moe::test {

struct SafeTensors {
    std::map<std::string, std::vector<double>> t;
    const std::vector<double>& at(const std::string& n) const { return t.at(n); }
};

inline SafeTensors read_safetensors(const std::string& path) {
    SafeTensors st;
    std::ifstream f(path, std::ios::binary);
    uint64_t n = 0;
    f.read(reinterpret_cast<char*>(&n), 8);
    std::string hdr(n, '\0');
    f.read(hdr.data(), std::streamsize(n));
    const auto h = nlohmann::json::parse(hdr);
    std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (const auto& [name, v] : h.items()) {
        if (name == "__metadata__") continue;
        EXPECT_EQ(v.at("dtype"), "F32") << name;
        const size_t b = v.at("data_offsets")[0], e = v.at("data_offsets")[1];
        std::vector<double> x((e - b) / 4);
        for (size_t i = 0; i < x.size(); ++i) {
            float y;
            std::memcpy(&y, data.data() + b + 4 * i, 4);
            x[i] = y;
        }
        st.t[name] = std::move(x);
    }
    return st;
}

}  // namespace moe::test
