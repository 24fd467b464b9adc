// libFuzzer target: encode and decode of arbitrary bytes with real vocabularies from the fixtures
// (SentencePiece: llama-spm; byte-level BPE: gpt-2, qwen2, llama-bpe). The first byte picks the
// vocabulary and the flags; the rest is the text, and also read as token ids for decode.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "formats/model_source.h"
#include "tokenizer/tokenizer.h"

namespace {

std::vector<std::unique_ptr<moe::Tokenizer>> load_all() {
    std::vector<std::unique_ptr<moe::Tokenizer>> out;
    for (const char* name : {"llama-spm", "gpt-2", "qwen2", "llama-bpe"}) {
        const std::string path =
            std::string(MOE_FIXTURES_DIR) + "/tokenizers/ggml-vocab-" + name + ".gguf";
        auto src = moe::open_model_source(path);
        if (!src) {
            std::fprintf(stderr, "fuzz_tokenizer: %s\n", src.message().c_str());
            std::abort();
        }
        auto tok = moe::Tokenizer::from_source(**src);
        if (!tok) {
            std::fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path.c_str(), tok.message().c_str());
            std::abort();
        }
        out.push_back(std::move(*tok));
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto toks = load_all();
    if (size == 0) return 0;
    const moe::Tokenizer& tok = *toks[data[0] % toks.size()];
    const bool bos = data[0] & 4, special = data[0] & 8;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::vector<int32_t> ids = tok.encode(text, bos, special);
    for (int32_t id : ids)
        if (id < 0 || id >= tok.n_vocab()) std::abort();  // encode must only make valid ids
    (void)tok.decode(ids, data[0] & 16);
    // Arbitrary ids, out of range included: decode must not read outside the vocabulary.
    std::vector<int32_t> raw;
    for (size_t k = 1; k + 4 <= size; k += 4) {
        int32_t v;
        std::memcpy(&v, data + k, 4);
        raw.push_back(v);
    }
    (void)tok.decode(raw, false);
    for (int32_t id : raw) (void)tok.decode_token(id, true);
    return 0;
}
