// libFuzzer target: the safetensors reader on arbitrary bytes (header length, JSON header,
// dtypes, shapes, data offsets) and a view of every tensor it accepts.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/mapped_file.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto mapped = moe::MappedFile::from_bytes(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
    auto f = moe::SafetensorsFile::parse(mapped);
    if (!f) return 0;
    for (const auto& t : (*f)->tensors()) (void)(*f)->find(t.name);
    return 0;
}
