// Request validation of the OpenAI endpoints: every bad-input case gives 400 with the field named
// in `param`, as OpenAI's API does; good requests carry every field through.
#include <gtest/gtest.h>

#include <cmath>

#include "server/openai_request.h"

namespace moe::server {
namespace {

struct Bad {
    const char* body;
    const char* param;  // "" -> null
};

void expect_bad_chat(const Bad& b) {
    auto r = parse_chat_request(b.body);
    ASSERT_FALSE(r.ok()) << b.body;
    EXPECT_EQ(r.error().status, 400) << b.body;
    EXPECT_EQ(r.error().param, b.param) << b.body << " -> " << r.error().message;
    EXPECT_EQ(r.error().type, "invalid_request_error");
    EXPECT_FALSE(r.error().message.empty());
}

constexpr const char* kMsgs = R"("messages":[{"role":"user","content":"hi"}])";

std::string chat(const std::string& extra) {
    return std::string("{") + kMsgs + extra + "}";
}

TEST(ServerRequest, ChatCarriesEveryField) {
    auto r = parse_chat_request(R"({"model":"m","messages":[{"role":"system","content":"s"},
        {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
        {"role":"assistant","content":null}],
        "max_completion_tokens":7,"temperature":0.5,"top_p":0.9,"seed":42,"stop":["x","y"],
        "presence_penalty":0.5,"frequency_penalty":-0.5,"logprobs":true,"top_logprobs":3,
        "stream":true,"stream_options":{"include_usage":true},"n":1,"top_k":5,"min_p":0.1,
        "repeat_penalty":1.1,"ignore_eos":true,"chat_template_kwargs":{"enable_thinking":false}})");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->model, "m");
    ASSERT_EQ(r->messages.size(), 3u);
    EXPECT_EQ(r->messages[1].content, "ab");
    EXPECT_EQ(r->messages[2].role, "assistant");
    EXPECT_EQ(r->max_tokens, 7);
    EXPECT_FLOAT_EQ(r->sampling.temp, 0.5f);
    EXPECT_FLOAT_EQ(r->sampling.top_p, 0.9f);
    EXPECT_EQ(r->sampling.seed, 42u);
    EXPECT_TRUE(r->seed_given);
    EXPECT_EQ(r->stop, (std::vector<std::string>{"x", "y"}));
    EXPECT_FLOAT_EQ(r->sampling.presence_penalty, 0.5f);
    EXPECT_FLOAT_EQ(r->sampling.frequency_penalty, -0.5f);
    EXPECT_EQ(r->top_logprobs, 3);
    EXPECT_TRUE(r->stream);
    EXPECT_TRUE(r->include_usage);
    EXPECT_TRUE(r->ignore_eos);
    EXPECT_EQ(r->sampling.top_k, 5);
    EXPECT_FLOAT_EQ(r->sampling.min_p, 0.1f);
    EXPECT_FLOAT_EQ(r->sampling.repeat_penalty, 1.1f);
    EXPECT_EQ(r->template_kwargs["enable_thinking"], false);
}

TEST(ServerRequest, ChatDefaultsAreOpenAIs) {
    auto r = parse_chat_request(chat(R"(,"stop":"END","logprobs":true)"));
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->max_tokens.has_value());
    EXPECT_FLOAT_EQ(r->sampling.temp, 1.0f);
    EXPECT_FLOAT_EQ(r->sampling.top_p, 1.0f);
    EXPECT_EQ(r->sampling.top_k, 0);
    EXPECT_FALSE(r->seed_given);
    EXPECT_EQ(r->stop, std::vector<std::string>{"END"});
    EXPECT_EQ(r->top_logprobs, 0);  // logprobs without top_logprobs: the token's own only
    EXPECT_FALSE(r->stream);
}

TEST(ServerRequest, ChatBadInputNamesTheField) {
    const Bad cases[] = {
        {"{not json", ""},
        {"[1,2]", ""},
        {"", ""},
        {R"({"model":"m"})", "messages"},
        {R"({"messages":"hi"})", "messages"},
        {R"({"messages":[]})", "messages"},
        {R"({"messages":[1]})", "messages[0]"},
        {R"({"messages":[{"content":"x"}]})", "messages[0].role"},
        {R"({"messages":[{"role":"wizard","content":"x"}]})", "messages[0].role"},
        {R"({"messages":[{"role":"user","content":"a"},{"role":"user"}]})", "messages[1].content"},
        {R"({"messages":[{"role":"user","content":5}]})", "messages[0].content"},
        {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
         "messages[0].content[0].type"},
        {R"({"model":7,"messages":[{"role":"user","content":"x"}]})", "model"},
    };
    for (const auto& b : cases) expect_bad_chat(b);
    const Bad fields[] = {
        {R"(,"max_tokens":0)", "max_tokens"},
        {R"(,"max_tokens":-5)", "max_tokens"},
        {R"(,"max_tokens":100000000000)", "max_tokens"},
        {R"(,"max_tokens":"10")", "max_tokens"},
        {R"(,"max_tokens":1.5)", "max_tokens"},
        {R"(,"max_completion_tokens":0)", "max_completion_tokens"},
        {R"(,"temperature":-1)", "temperature"},
        {R"(,"temperature":"hot")", "temperature"},
        {R"(,"temperature":1e300)", "temperature"},
        {R"(,"top_p":1.5)", "top_p"},
        {R"(,"top_p":-0.1)", "top_p"},
        {R"(,"top_k":-1)", "top_k"},
        {R"(,"min_p":2)", "min_p"},
        {R"(,"repeat_penalty":0)", "repeat_penalty"},
        {R"(,"presence_penalty":3)", "presence_penalty"},
        {R"(,"frequency_penalty":-2.5)", "frequency_penalty"},
        {R"(,"seed":"x")", "seed"},
        {R"(,"stop":5)", "stop"},
        {R"(,"stop":["a",1])", "stop[1]"},
        {R"(,"stop":[""])", "stop"},
        {R"(,"stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"])",
         "stop"},
        {R"(,"n":2)", "n"},
        {R"(,"n":0)", "n"},
        {R"(,"logprobs":1)", "logprobs"},
        {R"(,"logprobs":true,"top_logprobs":21)", "top_logprobs"},
        {R"(,"top_logprobs":2)", "top_logprobs"},
        {R"(,"stream":"yes")", "stream"},
        {R"(,"ignore_eos":1)", "ignore_eos"},
        {R"(,"stream_options":{"include_usage":true})", "stream_options"},
        {R"(,"stream":true,"stream_options":{"include_usage":1})", "stream_options.include_usage"},
        {R"(,"chat_template_kwargs":[1])", "chat_template_kwargs"},
    };
    for (const auto& b : fields) expect_bad_chat({chat(b.body).c_str(), b.param});
}

TEST(ServerRequest, NaNIsNotJson) {
    // JSON has no NaN/Infinity literals: such bodies are malformed JSON (400, param null).
    for (const char* v : {"NaN", "nan", "Infinity", "-Infinity"})
        expect_bad_chat({chat(std::string(R"(,"temperature":)") + v).c_str(), ""});
}

TEST(ServerRequest, MalformedJsonHasCode) {
    auto r = parse_chat_request("{\"messages\": [");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "invalid_json");
}

TEST(ServerRequest, CompletionPromptForms) {
    auto s = parse_completion_request(R"({"prompt":"hello","logprobs":2,"max_tokens":3})");
    ASSERT_TRUE(s.ok());
    EXPECT_FALSE(s->prompt_is_tokens);
    EXPECT_EQ(s->prompt_text, "hello");
    EXPECT_EQ(s->top_logprobs, 2);
    auto one = parse_completion_request(R"({"prompt":["hi"]})");
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(one->prompt_text, "hi");
    auto t = parse_completion_request(R"({"prompt":[1,2,3],"echo":false})");
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(t->prompt_is_tokens);
    EXPECT_EQ(t->prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
}

TEST(ServerRequest, CompletionBadInput) {
    const Bad cases[] = {
        {R"({})", "prompt"},
        {R"({"prompt":5})", "prompt"},
        {R"({"prompt":[]})", "prompt"},
        {R"({"prompt":["a","b"]})", "prompt"},
        {R"({"prompt":[1,-2]})", "prompt[1]"},
        {R"({"prompt":[1,"x"]})", "prompt[1]"},
        {R"({"prompt":[1,4294967296]})", "prompt[1]"},
        {R"({"prompt":"x","echo":true})", "echo"},
        {R"({"prompt":"x","logprobs":true})", "logprobs"},
        {R"({"prompt":"x","logprobs":50})", "logprobs"},
        {R"({"prompt":"x","max_tokens":0})", "max_tokens"},
        {R"({"prompt":"x","n":3})", "n"},
    };
    for (const auto& b : cases) {
        auto r = parse_completion_request(b.body);
        ASSERT_FALSE(r.ok()) << b.body;
        EXPECT_EQ(r.error().status, 400);
        EXPECT_EQ(r.error().param, b.param) << b.body << " -> " << r.error().message;
    }
}

TEST(ServerRequest, TokenizeAndDetokenize) {
    auto t = parse_tokenize_request(R"({"content":"hi","add_special":true})");
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->content, "hi");
    EXPECT_TRUE(t->add_special);
    EXPECT_EQ(parse_tokenize_request(R"({})").error().param, "content");
    EXPECT_EQ(parse_tokenize_request(R"({"content":1})").error().param, "content");
    auto d = parse_detokenize_request(R"({"tokens":[3,4]})");
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->tokens, (std::vector<int32_t>{3, 4}));
    EXPECT_EQ(parse_detokenize_request(R"({"tokens":[3,-1]})").error().param, "tokens[1]");
    EXPECT_EQ(parse_detokenize_request(R"({"tokens":"3"})").error().param, "tokens");
}

TEST(ServerRequest, ErrorBodyIsOpenAIs) {
    const auto j = nlohmann::json::parse(error_body(bad_request("top_p", "bad", "")));
    EXPECT_EQ(j["error"]["message"], "bad");
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_EQ(j["error"]["param"], "top_p");
    EXPECT_TRUE(j["error"]["code"].is_null());
    const auto k = nlohmann::json::parse(error_body(bad_request("", "x", "invalid_json")));
    EXPECT_TRUE(k["error"]["param"].is_null());
    EXPECT_EQ(k["error"]["code"], "invalid_json");
}

// Arbitrary bytes never crash the parser or pass as a request without messages.
TEST(ServerRequest, GarbageNeverCrashes) {
    uint64_t x = 88172645463325252ull;
    std::string seed = chat(R"(,"stop":["a"],"max_tokens":5)");
    for (int i = 0; i < 3000; ++i) {
        std::string s = seed;
        for (int k = 0; k < 1 + i % 4; ++k) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            s[x % s.size()] = char(x >> 32);
        }
        auto r = parse_chat_request(s);
        if (r.ok()) {
            EXPECT_FALSE(r->messages.empty());
        } else {
            EXPECT_EQ(r.error().status, 400);
        }
        auto c = parse_completion_request(s);
        if (!c.ok()) {
            EXPECT_EQ(c.error().status, 400);
        }
    }
}

}  // namespace
}  // namespace moe::server
