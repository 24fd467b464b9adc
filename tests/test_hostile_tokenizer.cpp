// Tokenizer metadata from a hostile file: NaN scores, unknown token types, wrongly typed flags,
// out-of-range special ids and malformed merges are refused with the key named; the same
// vocabulary without the flaw builds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "formats/model_source.h"
#include "gguf/gguf.h"
#include "gguf_builder.h"
#include "tokenizer/tokenizer.h"

namespace {

template <class T>
std::vector<uint8_t> array_of(uint32_t type, const std::vector<T>& items) {
    std::vector<uint8_t> b(12);
    const uint64_t n = items.size();
    std::memcpy(b.data(), &type, 4);
    std::memcpy(b.data() + 4, &n, 8);
    for (const T& x : items) {
        const auto* p = reinterpret_cast<const uint8_t*>(&x);
        b.insert(b.end(), p, p + sizeof(T));
    }
    return b;
}

std::vector<uint8_t> string_array(const std::vector<std::string>& items) {
    std::vector<uint8_t> b(12);
    const uint32_t type = 8;
    const uint64_t n = items.size();
    std::memcpy(b.data(), &type, 4);
    std::memcpy(b.data() + 4, &n, 8);
    for (const auto& s : items) {
        const uint64_t len = s.size();
        const auto* p = reinterpret_cast<const uint8_t*>(&len);
        b.insert(b.end(), p, p + 8);
        b.insert(b.end(), s.begin(), s.end());
    }
    return b;
}

struct Flaws {
    float score1 = -1.0f;
    int32_t type1 = 1;
    bool bos_as_string = false;
    uint32_t eos_id = 2;
    std::string merge = "a b";
    bool bpe = false;
};

// The error of building a 5-token vocabulary with the given flaws, or "".
std::string tokenizer_error(const Flaws& f) {
    moe::test::GgufBuilder b;
    b.kv_str("general.architecture", "llama");
    b.kv_str("tokenizer.ggml.model", f.bpe ? "gpt2" : "llama");
    b.kv_raw("tokenizer.ggml.tokens", 9, string_array({"<unk>", "<s>", "</s>", "a", "b"}));
    b.kv_raw("tokenizer.ggml.scores", 9, array_of<float>(6, {0.0f, f.score1, -2.0f, -3.0f, -4.0f}));
    b.kv_raw("tokenizer.ggml.token_type", 9, array_of<int32_t>(5, {2, f.type1, 3, 1, 1}));
    b.kv_u32("tokenizer.ggml.eos_token_id", f.eos_id);
    if (f.bos_as_string) b.kv_str("tokenizer.ggml.add_bos_token", "yes");
    if (f.bpe) b.kv_raw("tokenizer.ggml.merges", 9, string_array({f.merge}));
    const auto bytes = b.bytes();
    auto file = moe::gguf::File::parse(
        moe::MappedFile::from_bytes(std::string(bytes.begin(), bytes.end()), "v.gguf"));
    if (!file) return "parse: " + file.message();
    moe::GgufSource src(*file);
    auto t = moe::Tokenizer::from_source(src);
    return t ? std::string() : t.message();
}

bool has(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

TEST(HostileTokenizer, CleanVocabularyBuilds) {
    EXPECT_EQ(tokenizer_error({}), "");
    Flaws bpe;
    bpe.bpe = true;
    EXPECT_EQ(tokenizer_error(bpe), "");
}

TEST(HostileTokenizer, NanOrInfiniteScoresAreRefused) {
    for (float bad : {std::nanf(""), INFINITY}) {
        Flaws f;
        f.score1 = bad;
        const std::string e = tokenizer_error(f);
        EXPECT_TRUE(has(e, "tokenizer.ggml.scores[1]") && has(e, "finite")) << e;
    }
}

TEST(HostileTokenizer, UnknownTokenTypesAreRefused) {
    Flaws f;
    f.type1 = 42;
    const std::string e = tokenizer_error(f);
    EXPECT_TRUE(has(e, "tokenizer.ggml.token_type[1] = 42")) << e;
}

TEST(HostileTokenizer, WronglyTypedFlagsAreRefused) {
    Flaws f;
    f.bos_as_string = true;
    const std::string e = tokenizer_error(f);
    EXPECT_TRUE(has(e, "tokenizer.ggml.add_bos_token must be a bool")) << e;
}

TEST(HostileTokenizer, OutOfRangeSpecialIdsAreRefused) {
    Flaws f;
    f.eos_id = 5;
    const std::string e = tokenizer_error(f);
    EXPECT_TRUE(has(e, "tokenizer.ggml.eos_token_id = 5 is out of range")) << e;
}

TEST(HostileTokenizer, MalformedMergesAreRefused) {
    for (const std::string m : {"ab", "a ", ""}) {
        Flaws f;
        f.bpe = true;
        f.merge = m;
        const std::string e = tokenizer_error(f);
        EXPECT_TRUE(has(e, "tokenizer.ggml.merges[0]")) << "'" << m << "': " << e;
    }
}

}  // namespace
