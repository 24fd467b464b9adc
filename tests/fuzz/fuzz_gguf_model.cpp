// libFuzzer target: a whole model load from arbitrary GGUF bytes (hyperparameters, tensor
// binding and shapes, tensor/metadata consistency) plus the tokenizer built from its metadata.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/mapped_file.h"
#include "formats/model_source.h"
#include "gguf/gguf.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto mapped = moe::MappedFile::from_bytes(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
    auto f = moe::gguf::File::parse(mapped);
    if (!f) return 0;
    auto src = std::make_shared<moe::GgufSource>(*f);
    if (auto tok = moe::Tokenizer::from_source(*src); tok) {
        const auto ids = (*tok)->encode("Hello world <s> 123", true, true);
        for (int32_t id : ids) (void)(*tok)->decode_token(id, false);
    }
    (void)moe::plan_model(src);
    (void)moe::load_model(src);
    return 0;
}
