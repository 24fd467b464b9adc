// Test helper: builds Hugging Face folders (config.json + model.safetensors) in a temporary
// directory, for checkpoints derived from the fixtures.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moe::test {

struct StTensor {
    std::string name;
    std::string dtype;  // "F32", "BF16", "U8", ...
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

// Writes a safetensors file holding the given tensors in order.
inline void write_safetensors_file(const std::filesystem::path& path,
                                   const std::vector<StTensor>& entries) {
    nlohmann::ordered_json h;
    h["__metadata__"] = {{"format", "pt"}};
    uint64_t off = 0;
    for (const auto& e : entries) {
        h[e.name] = {
            {"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {off, off + e.bytes.size()}}};
        off += e.bytes.size();
    }
    std::string header = h.dump();
    while (header.size() % 8) header += ' ';
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out.put(char((n >> (8 * i)) & 0xff));
    out << header;
    for (const auto& e : entries)
        out.write(reinterpret_cast<const char*>(e.bytes.data()), std::streamsize(e.bytes.size()));
}

inline void write_json_file(const std::filesystem::path& path, const nlohmann::json& j) {
    std::ofstream(path) << j.dump(2);
}

inline nlohmann::json read_json_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
}

// A per-process directory removed on destruction.
class ScratchDir {
  public:
    explicit ScratchDir(const std::string& tag) {
        path_ = std::filesystem::temp_directory_path() /
                ("moeinfer_" + tag + "_" + std::to_string(::getpid()));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }
    std::string str() const { return path_.string(); }

  private:
    std::filesystem::path path_;
};

}  // namespace moe::test
