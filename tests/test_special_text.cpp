// Control tokens written literally inside text, on every fixture vocabulary: without --special
// their text is plain text (as tiktoken's encode_ordinary and the upstream engine with
// parse_special off treat it), with --special it becomes the one control token.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "formats/model_source.h"
#include "tokenizer/tokenizer.h"

namespace moe {
namespace {

constexpr int64_t kNormal = 1, kControl = 3;  // tokenizer.ggml.token_type values

struct Vocabulary {
    std::unique_ptr<Tokenizer> tok;
    std::vector<std::pair<int32_t, std::string>> controls;  // id, text (non-empty)
    std::vector<bool> is_control;                           // [n_vocab]
};

Vocabulary load(const std::string& name) {
    Vocabulary v;
    auto src = open_model_source(std::string(MOE_FIXTURES_DIR) + "/tokenizers/ggml-vocab-" + name +
                                 ".gguf");
    EXPECT_TRUE(src.ok()) << src.message();
    if (!src.ok()) return v;
    auto tok = Tokenizer::from_source(**src);
    EXPECT_TRUE(tok.ok()) << tok.message();
    if (!tok.ok()) return v;
    v.tok = std::move(*tok);
    const gguf::Array* types = (*src)->get_array("tokenizer.ggml.token_type");
    const gguf::Array* texts = (*src)->get_array("tokenizer.ggml.tokens");
    EXPECT_TRUE(types && texts);
    if (!types || !texts) return v;
    v.is_control.assign(texts->items.size(), false);
    auto add = [&](size_t i) {
        if (i >= texts->items.size() || v.is_control[i]) return;
        v.is_control[i] = true;
        const std::string* s = texts->items[i].as_string();
        if (s && !s->empty()) v.controls.emplace_back(int32_t(i), *s);
    };
    for (size_t i = 0; i < types->items.size(); ++i)
        if (types->items[i].as_int().value_or(0) == kControl) add(i);
    // Boundary markers whatever type the file gives them: the ids the metadata names, and the
    // usual texts of sequence / turn / fill-in-the-middle markers where they are not ordinary
    // pieces (some files type them user-defined, e.g. phi-3's "</s>", deepseek-coder's "<|EOT|>").
    for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                            "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
        if (auto id = (*src)->get_int(key)) add(size_t(*id));
    for (std::string_view text :
         {"<s>", "</s>", "<|EOT|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>",
          "<|end_of_text|>", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"})
        for (size_t i = 0; i < texts->items.size(); ++i)
            if (const std::string* s = texts->items[i].as_string();
                s && *s == text && types->items[i].as_int().value_or(0) != kNormal)
                add(i);
    return v;
}

class ControlTokenText : public testing::TestWithParam<std::string> {};

TEST_P(ControlTokenText, IsPlainTextWithoutSpecialAndOneTokenWith) {
    const Vocabulary v = load(GetParam());
    ASSERT_TRUE(v.tok);
    ASSERT_FALSE(v.controls.empty()) << GetParam() << ": no control tokens";
    size_t checked = 0;
    for (const auto& [id, text] : v.controls) {
        const std::pair<std::string, size_t> cases[] = {{text, 1},
                                                        {"Hello " + text + " world", 1},
                                                        {"a" + text + "b", 1},
                                                        {"\n" + text + "\n" + text, 2}};
        for (const auto& [s, times] : cases) {
            const auto plain = v.tok->encode(s, false, false);
            for (int32_t t : plain)
                ASSERT_FALSE(t >= 0 && size_t(t) < v.is_control.size() && v.is_control[size_t(t)])
                    << GetParam() << ": '" << s << "' gave control token " << t
                    << " without --special";
            EXPECT_EQ(v.tok->decode(plain), s) << GetParam();
            const auto parsed = v.tok->encode(s, false, true);
            const auto n = std::count(parsed.begin(), parsed.end(), id);
            // Another control token may contain this one's text; then the longest one wins.
            const bool longer_exists =
                std::any_of(v.controls.begin(), v.controls.end(), [&](auto& c) {
                    return c.second.size() > text.size() && s.find(c.second) != std::string::npos;
                });
            if (!longer_exists)
                EXPECT_EQ(size_t(n), times) << GetParam() << ": '" << s << "' with --special";
            ++checked;
        }
    }
    std::printf("[ special  ] %s: %zu control tokens, %zu strings\n", GetParam().c_str(),
                v.controls.size(), checked);
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, ControlTokenText,
                         testing::Values("llama-spm", "phi-3", "qwen2", "deepseek-llm",
                                         "deepseek-coder", "gpt-2", "llama-bpe", "gpt-4o"),
                         [](const auto& i) {
                             std::string n = i.param;
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

}  // namespace
}  // namespace moe
