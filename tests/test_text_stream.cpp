// Streaming text: the incremental detokenizer against whole-sequence Tokenizer::decode on every
// fixture vocabulary and fixture model, and stop-string hold-back.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>

#include "fixtures.h"
#include "formats/model_source.h"
#include "runtime/detokenizer.h"
#include "runtime/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace moe {
namespace {

const Tokenizer* tokenizer_at(const std::string& path) {
    static std::mutex mu;
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    std::lock_guard lk(mu);
    if (auto it = cache.find(path); it != cache.end()) return it->second.get();
    auto src = open_model_source(path);
    if (!src) {
        ADD_FAILURE() << path << ": " << src.message();
        return nullptr;
    }
    auto tok = Tokenizer::from_source(**src);
    if (!tok) {
        ADD_FAILURE() << path << ": " << tok.message();
        return nullptr;
    }
    return (cache[path] = std::move(*tok)).get();
}

// The upstream test strings of a vocabulary fixture (emoji, CJK, Khmer, whitespace runs).
std::vector<std::string> test_strings(const std::string& vocab_gguf) {
    std::ifstream in(vocab_gguf + ".inp", std::ios::binary);
    const std::string inp((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> out;
    for (size_t pos = 0; pos < inp.size();) {
        const size_t next = inp.find(sep, pos);
        out.push_back(inp.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
        if (next == std::string::npos) break;
        pos = next + sep.size();
    }
    return out;
}

bool valid_utf8(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const size_t n = c < 0x80         ? 1
                         : (c >> 5) == 6  ? 2
                         : (c >> 4) == 14 ? 3
                         : (c >> 3) == 30 ? 4
                                          : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += n;
    }
    return true;
}

// Streams `gen` after `context` and checks the text against decode(context + gen) with the
// decoded context removed. Where the reference is valid UTF-8, every piece must be too.
void expect_stream_matches(const Tokenizer& tok, const std::vector<int32_t>& context,
                           const std::vector<int32_t>& gen, const std::string& what) {
    std::vector<int32_t> all = context;
    all.insert(all.end(), gen.begin(), gen.end());
    const std::string whole = tok.decode(all), before = tok.decode(context);
    ASSERT_EQ(whole.compare(0, before.size(), before), 0) << what;
    const std::string want = whole.substr(before.size());
    IncrementalDecoder d(tok, context);
    std::string got;
    const bool check_pieces = valid_utf8(want);
    for (int32_t id : gen) {
        const std::string piece = d.push(id);
        if (check_pieces) EXPECT_TRUE(valid_utf8(piece)) << what << ": piece splits a character";
        got += piece;
    }
    got += d.flush();
    EXPECT_EQ(got, want) << what;
}

void check_tokenizer(const Tokenizer& tok, const std::vector<std::string>& texts,
                     const std::string& name) {
    std::mt19937 rng(1234);
    const int32_t n_vocab = tok.n_vocab();
    std::vector<int32_t> bos;
    if (tok.bos() >= 0) bos.push_back(tok.bos());
    // Real text: multi-byte characters split over tokens (byte fallback in SPM vocabularies).
    for (const std::string& t : texts) {
        const auto ids = tok.encode(t, false, false);
        for (size_t cut : {size_t(0), ids.size() / 3, ids.size() / 2}) {
            std::vector<int32_t> ctx(bos);
            ctx.insert(ctx.end(), ids.begin(), ids.begin() + long(cut));
            expect_stream_matches(tok, ctx, {ids.begin() + long(cut), ids.end()}, name + ": " + t);
        }
        expect_stream_matches(tok, {}, ids, name + " (no context): " + t);
    }
    // Random ids over the whole vocabulary (byte tokens, special tokens, anything).
    for (int trial = 0; trial < 50; ++trial) {
        std::uniform_int_distribution<int32_t> any(0, n_vocab - 1);
        std::vector<int32_t> ctx(bos), gen;
        for (int i = trial % 4; i > 0; --i) ctx.push_back(any(rng));
        for (int i = 0; i < 24; ++i) gen.push_back(any(rng));
        expect_stream_matches(tok, ctx, gen, name + ": random ids");
    }
}

class DetokenizerVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(DetokenizerVocab, StreamEqualsWholeDecode) {
    const std::string path =
        test::fixtures_dir() + "/tokenizers/ggml-vocab-" + GetParam() + ".gguf";
    const Tokenizer* tok = tokenizer_at(path);
    ASSERT_NE(tok, nullptr);
    const auto texts = test_strings(path);
    ASSERT_GT(texts.size(), 10u);
    check_tokenizer(*tok, texts, GetParam());
}

INSTANTIATE_TEST_SUITE_P(All, DetokenizerVocab,
                         ::testing::Values("llama-spm", "phi-3", "qwen2", "deepseek-llm",
                                           "deepseek-coder", "gpt-2", "llama-bpe", "gpt-4o"));

class DetokenizerModel : public ::testing::TestWithParam<std::string> {};

TEST_P(DetokenizerModel, StreamEqualsWholeDecode) {
    const Tokenizer* tok = tokenizer_at(test::gguf_path(GetParam(), "f32"));
    ASSERT_NE(tok, nullptr);
    const auto texts = test_strings(test::fixtures_dir() + "/tokenizers/ggml-vocab-llama-spm.gguf");
    check_tokenizer(*tok, texts, GetParam());
}

INSTANTIATE_TEST_SUITE_P(All, DetokenizerModel,
                         ::testing::Values("llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe",
                                           "deepseek2", "deepseek3", "gptoss"));

TEST(Detokenizer, SpmLeadingSpaceAfterBosOnly) {
    // A prompt of only BOS: the first generated token loses its leading space, as in decode().
    const Tokenizer* tok =
        tokenizer_at(test::fixtures_dir() + "/tokenizers/ggml-vocab-llama-spm.gguf");
    ASSERT_NE(tok, nullptr);
    const auto ids = tok->encode("Hello world", false, false);
    ASSERT_EQ(tok->decode_token(ids[0])[0], ' ');
    IncrementalDecoder d(*tok, std::vector<int32_t>{tok->bos()});
    std::string got;
    for (int32_t id : ids) got += d.push(id);
    EXPECT_EQ(got + d.flush(), "Hello world");
}

TEST(Detokenizer, HoldsIncompleteCharacter) {
    // "é" as two byte-fallback tokens: nothing until the second byte arrives.
    const Tokenizer* tok =
        tokenizer_at(test::fixtures_dir() + "/tokenizers/ggml-vocab-llama-spm.gguf");
    ASSERT_NE(tok, nullptr);
    const int32_t c3 = tok->token_id("<0xC3>"), a9 = tok->token_id("<0xA9>");
    ASSERT_GE(c3, 0);
    ASSERT_GE(a9, 0);
    IncrementalDecoder d(*tok, std::vector<int32_t>{tok->bos()});
    EXPECT_EQ(d.push(c3), "");
    EXPECT_EQ(d.push(a9), "\xC3\xA9");
    EXPECT_EQ(d.push(c3), "");
    EXPECT_EQ(d.flush(), "\xC3");  // a character the sequence never finished comes out at the end
}

// Feeds `pieces` and returns what the matcher released, including the final flush.
std::string feed(StopMatcher& m, const std::vector<std::string>& pieces) {
    std::string out;
    for (const auto& p : pieces) out += m.push(p);
    return out + m.flush();
}

TEST(StopStrings, CutsBeforeAStopSplitAcrossPieces) {
    StopMatcher m({"</s>", "\nUser:"});
    std::string out;
    for (const std::string p : {"Hello", " wor", "ld\nUs", "er: more"}) {
        const std::string piece = m.push(p);
        EXPECT_EQ(piece.find('\n'), std::string::npos) << "a possible stop prefix was released";
        out += piece;
    }
    EXPECT_TRUE(m.stopped());
    EXPECT_EQ(out, "Hello world");
    EXPECT_EQ(m.flush(), "");
    EXPECT_EQ(m.push("after"), "");
}

TEST(StopStrings, ReleasesHeldPrefixWhenNoStopFollows) {
    StopMatcher m({"STOP"});
    EXPECT_EQ(m.push("abc ST"), "abc ");
    EXPECT_EQ(m.push("O"), "");
    EXPECT_EQ(m.push("Qx"), "STOQx");
    EXPECT_FALSE(m.stopped());
    StopMatcher tail({"STOP"});
    EXPECT_EQ(feed(tail, {"end S", "TO"}), "end STO");
    EXPECT_FALSE(tail.stopped());
}

TEST(StopStrings, EarliestStopWins) {
    StopMatcher m({"cd", "b"});
    EXPECT_EQ(feed(m, {"abcd"}), "a");
    EXPECT_TRUE(m.stopped());
    StopMatcher none({});
    EXPECT_EQ(feed(none, {"a", "b"}), "ab");
    StopMatcher empty({""});
    EXPECT_EQ(feed(empty, {"a", "b"}), "ab");
}

TEST(StopStrings, Holdback) {
    EXPECT_EQ(stop_holdback("hello wo", {"world"}), 2u);
    EXPECT_EQ(stop_holdback("hello", {"world"}), 0u);
    EXPECT_EQ(stop_holdback("xab", {"abc", "bcd"}), 2u);
    EXPECT_EQ(stop_holdback("abc", {"abc"}), 0u);  // a whole stop is a match, not a prefix
}

}  // namespace
}  // namespace moe
