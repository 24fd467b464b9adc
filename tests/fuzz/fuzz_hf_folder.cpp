// libFuzzer target: a Hugging Face folder from arbitrary bytes, split at the first NUL into
// config.json and model.safetensors, written to a private folder under /dev/shm, then opened
// (config translation, name maps, expert stacking) and loaded as a model.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "formats/hf_source.h"
#include "models/model.h"

namespace {

// Removed when the fuzzer exits normally (libFuzzer ends a timed run with exit()).
struct Folder {
    std::string path = "/dev/shm/moe_fuzz_hf_" + std::to_string(::getpid());
    Folder() { std::filesystem::create_directories(path); }
    ~Folder() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

const std::string& folder() {
    static const Folder dir;
    return dir.path;
}

void write(const std::string& path, const uint8_t* p, size_t n) {
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(p), std::streamsize(n));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
    if (!nul) return 0;
    const std::string& dir = folder();
    write(dir + "/config.json", data, size_t(nul - data));
    write(dir + "/model.safetensors", nul + 1, size - size_t(nul - data) - 1);
    auto src = moe::open_hf_folder(dir);
    if (src) (void)moe::load_model(*src);
    return 0;
}
