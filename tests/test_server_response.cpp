// Response shapes, field for field as OpenAI documents them (chat.completion,
// chat.completion.chunk, text_completion, usage, both logprobs forms).
#include <gtest/gtest.h>

#include "server/metrics_text.h"
#include "server/openai_response.h"

namespace moe::server {
namespace {

const ResponseMeta kMeta{"chatcmpl-1", "demo", 1700000000};

std::vector<TokenEvent> two_tokens() {
    TokenEvent a;
    a.token = 5;
    a.text = "Hi";
    a.logprob = TokenLogprob{5, "Hi", -0.25f};
    a.top = {{5, "Hi", -0.25f}, {6, "Yo", -1.5f}};
    TokenEvent b;
    b.token = 7;
    b.text = "";
    b.logprob = TokenLogprob{7, "\xE2\x82", -2.0f};  // half of a character
    return {a, b};
}

TEST(ServerResponse, ChatCompletionShape) {
    const json lp = {{"content", chat_logprob_content(two_tokens())}, {"refusal", nullptr}};
    const json j = json::parse(dump(chat_completion(kMeta, "Hello", std::string("think"), lp,
                                                    FinishReason::Length, Usage{10, 2, 4})));
    EXPECT_EQ(j["id"], "chatcmpl-1");
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["created"], 1700000000);
    EXPECT_EQ(j["model"], "demo");
    ASSERT_EQ(j["choices"].size(), 1u);
    const json& c = j["choices"][0];
    EXPECT_EQ(c["index"], 0);
    EXPECT_EQ(c["finish_reason"], "length");
    EXPECT_EQ(c["message"]["role"], "assistant");
    EXPECT_EQ(c["message"]["content"], "Hello");
    EXPECT_EQ(c["message"]["reasoning_content"], "think");
    const json& e = c["logprobs"]["content"];
    ASSERT_EQ(e.size(), 2u);
    EXPECT_EQ(e[0]["token"], "Hi");
    EXPECT_FLOAT_EQ(e[0]["logprob"].get<float>(), -0.25f);
    EXPECT_EQ(e[0]["bytes"], json::array({72, 105}));
    ASSERT_EQ(e[0]["top_logprobs"].size(), 2u);
    EXPECT_EQ(e[0]["top_logprobs"][1]["token"], "Yo");
    EXPECT_EQ(e[1]["bytes"], json::array({0xE2, 0x82}));  // exact bytes even when not UTF-8
    EXPECT_EQ(j["usage"]["prompt_tokens"], 10);
    EXPECT_EQ(j["usage"]["completion_tokens"], 2);
    EXPECT_EQ(j["usage"]["total_tokens"], 12);
    EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
}

TEST(ServerResponse, NoReasoningFieldWithoutReasoning) {
    const json j = chat_completion(kMeta, "x", std::nullopt, nullptr, FinishReason::Stop, {});
    EXPECT_FALSE(j["choices"][0]["message"].contains("reasoning_content"));
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
    EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
}

TEST(ServerResponse, ChunksAndSse) {
    const json c = chat_chunk(kMeta, {{"content", "a"}}, nullptr, std::nullopt, true);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["choices"][0]["delta"]["content"], "a");
    EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    EXPECT_TRUE(c.contains("usage") && c["usage"].is_null());
    const json f = chat_chunk(kMeta, json::object(), nullptr, FinishReason::Stop, false);
    EXPECT_EQ(f["choices"][0]["finish_reason"], "stop");
    EXPECT_TRUE(f["choices"][0]["delta"].empty());
    EXPECT_FALSE(f.contains("usage"));
    const json u = usage_chunk(kMeta, "chat.completion.chunk", Usage{3, 4, 0});
    EXPECT_TRUE(u["choices"].empty());
    EXPECT_EQ(u["usage"]["total_tokens"], 7);
    const std::string ev = sse_data(json{{"a", 1}});
    EXPECT_EQ(ev, "data: {\"a\":1}\n\n");
    EXPECT_STREQ(kSseDone, "data: [DONE]\n\n");
}

TEST(ServerResponse, MoeRoutingEntriesKeyedByModelLayer) {
    TokenEvent a;
    a.token = 9;
    a.routing = {{{3, 0.75f}, {1, 0.25f}}, {{0, 0.5f}, {2, 0.5f}}};
    TokenEvent b;
    b.token = 4;
    b.routing = {{{1, 1.0f}, {3, 0.0f}}, {{2, 0.625f}, {0, 0.375f}}};
    // MoE layers 0 and 1 are model layers 1 and 2 (a dense first layer, as DeepSeek's).
    const json j = json::parse(dump(moe_routing_json({a, b}, {1, 2})));
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[0]["token"], 9);
    EXPECT_EQ(j[0]["layers"].size(), 2u);
    EXPECT_EQ(j[0]["layers"]["1"], json::parse("[[3, 0.75], [1, 0.25]]"));
    EXPECT_EQ(j[0]["layers"]["2"], json::parse("[[0, 0.5], [2, 0.5]]"));
    EXPECT_EQ(j[1]["token"], 4);
    EXPECT_EQ(j[1]["layers"]["2"], json::parse("[[2, 0.625], [0, 0.375]]"));
    EXPECT_TRUE(moe_routing_json({}, {1, 2}).empty());
}

TEST(ServerResponse, TextCompletionShape) {
    const json lp = completion_logprobs(two_tokens(), 3);
    const json j = text_completion(kMeta, "Hi", lp, FinishReason::Stop, Usage{1, 2, 0}, false);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["choices"][0]["text"], "Hi");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
    const json& l = j["choices"][0]["logprobs"];
    EXPECT_EQ(l["tokens"], json::array({"Hi", "\xE2\x82"}));
    EXPECT_FLOAT_EQ(l["token_logprobs"][1].get<float>(), -2.0f);
    EXPECT_FLOAT_EQ(l["top_logprobs"][0]["Yo"].get<float>(), -1.5f);
    EXPECT_EQ(l["text_offset"], json::array({3, 5}));
    EXPECT_EQ(j["usage"]["completion_tokens"], 2);
    // Invalid UTF-8 is replaced in the serialized text, never thrown on.
    EXPECT_NE(dump(j).find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(ServerMetrics, PrometheusText) {
    SchedulerMetrics m;
    m.requests_total = 5;
    m.kv_pages_total = 10;
    m.kv_pages_used = 3;
    m.decode_steps = 4;
    m.experts_per_layer_sum = 10;
    m.expert_bytes_read_total = 800;
    m.decode_tokens = 8;
    const std::string t = metrics_text({{"de\"mo", m}}, ServerCounters{7, 2, 1});
    EXPECT_NE(t.find("# HELP moeinfer_requests_total "), std::string::npos);
    EXPECT_NE(t.find("# TYPE moeinfer_requests_total counter\n"), std::string::npos);
    EXPECT_NE(t.find("moeinfer_requests_total{model=\"de\\\"mo\"} 5\n"), std::string::npos);
    EXPECT_NE(t.find("moeinfer_kv_pages_free{model=\"de\\\"mo\"} 7\n"), std::string::npos);
    EXPECT_NE(t.find("# TYPE moeinfer_queue_length gauge\n"), std::string::npos);
    EXPECT_NE(t.find("moeinfer_decode_experts_per_layer_mean{model=\"de\\\"mo\"} 2.5\n"),
              std::string::npos);
    EXPECT_NE(t.find("moeinfer_decode_expert_bytes_per_token_mean{model=\"de\\\"mo\"} 100\n"),
              std::string::npos);
    EXPECT_NE(t.find("moeinfer_http_requests_total 7\n"), std::string::npos);
    // Every sample line belongs to a family declared just before it.
    std::string family;
    size_t pos = 0;
    while (pos < t.size()) {
        const size_t nl = t.find('\n', pos);
        const std::string line = t.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.rfind("# TYPE ", 0) == 0) {
            family = line.substr(7, line.find(' ', 7) - 7);
        } else if (line[0] != '#') {
            EXPECT_EQ(line.rfind(family, 0), 0u) << line;
        }
    }
}

}  // namespace
}  // namespace moe::server
