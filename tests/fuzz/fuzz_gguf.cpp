// libFuzzer target: the GGUF reader on arbitrary bytes (header, metadata, tensor infos) and the
// typed getters a loader uses. Every input must end in a value or a clean error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/mapped_file.h"
#include "formats/model_source.h"
#include "gguf/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto mapped = moe::MappedFile::from_bytes(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
    auto f = moe::gguf::File::parse(mapped);
    if (!f) return 0;
    moe::GgufSource src(*f);
    for (const auto& [k, v] : src.metadata()) (void)v.to_string();
    for (const auto& name : src.tensor_names()) (void)src.tensor(name);
    (void)src.architecture();
    return 0;
}
