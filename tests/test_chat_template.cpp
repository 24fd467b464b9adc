// Chat templates: the Jinja interpreter on each construct, on the official chat templates of the
// supported families (their tokenizer_config.json strings, embedded as data), and the built-in
// per-family formats. Every expected string is written by hand from the family's published
// format, not produced by the code under test.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "chat/jinja.h"

using moe::ChatFormat;
using moe::ChatFormatOptions;
using moe::ChatMessage;
using moe::ChatRenderer;
using moe::jinja::Template;
using moe::jinja::Value;

namespace {

// system + user + assistant + user (+ generation prompt): the conversation every family renders.
const std::vector<ChatMessage> kConv = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello!"},
    {"assistant", "Hi there! How can I help?"},
    {"user", "What is 2+2?"},
};

// Renders `src` with `ctx_json` (merged over an empty context); fails the test on error.
std::string render(const std::string& src, const std::string& ctx_json = "{}") {
    auto t = Template::parse(src);
    if (!t) {
        ADD_FAILURE() << t.message();
        return "<parse error>";
    }
    auto r = t->render(moe::jinja::from_json(nlohmann::ordered_json::parse(ctx_json)));
    if (!r) {
        ADD_FAILURE() << r.message();
        return "<render error>";
    }
    return *r;
}

std::string render_error(const std::string& src, const std::string& ctx_json = "{}") {
    auto t = Template::parse(src);
    if (!t) return t.message();
    auto r = t->render(moe::jinja::from_json(nlohmann::ordered_json::parse(ctx_json)));
    if (!r) return r.message();
    return "";
}

std::string render_conv(const std::string& tmpl, const std::vector<ChatMessage>& msgs,
                        const std::string& bos, const std::string& eos, bool gen = true) {
    ChatFormatOptions o;
    o.bos = bos;
    o.eos = eos;
    ChatRenderer r = ChatRenderer::from_template(tmpl, ChatFormat::Plain, o);
    auto out = r.render_template(msgs, gen);
    if (!out) {
        ADD_FAILURE() << out.message();
        return "<error>";
    }
    return *out;
}

// ---------------------------------------------------------------- official templates (data)

// mistralai/Mixtral-8x7B-Instruct-v0.1 (and Mistral-7B-Instruct-v0.2), current "v1" template
// with an optional system message.
const char* kMixtralTemplate = R"TPL({%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
)TPL";

// The original Mixtral-8x7B-Instruct-v0.1 template (no system role).
const char* kMixtralV01Template =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ "
    "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";

// Qwen1.5-MoE-A2.7B-Chat / Qwen2-57B-A14B-Instruct.
const char* kQwen2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif "
    "%}{{'<|im_start|>' "
    "+ message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// Qwen3-30B-A3B / Qwen3-235B-A22B.
const char* kQwen3Template = R"TPL({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %})TPL";

// deepseek-ai/DeepSeek-V2-Chat, DeepSeek-V2-Lite-Chat.
const char* kDeepSeek2Template =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif "
    "%}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + "
    "message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + "
    "message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] "
    "+ "
    "'\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

// deepseek-ai/DeepSeek-V3 (December 2024 release).
const char* kDeepSeek3Template =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif "
    "%}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, "
    "system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == "
    "'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + "
    "message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = "
    "ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor "
    "%}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == "
    "'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- "
    "if "
    "message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false "
    "-%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first "
    "%}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + "
    "'<｜tool▁sep｜>' + "
    "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' "
    "+ "
    "'```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\\n' + "
    "'<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' "
    "+ "
    "'```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor "
    "%}{%- "
    "endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if "
    "ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- "
    "set "
    "ns.is_tool = false -%}{%- else %}{{'<｜Assistant｜>' + message['content'] + "
    "'<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set "
    "ns.is_tool = true -%}{%- if ns.is_output_first "
    "%}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' "
    "+ message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else "
    "%}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif "
    "%}{%- "
    "endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if "
    "add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}";

// allenai/OLMoE-1B-7B-0924-Instruct (the Tulu format, as in OLMo-2).
const char* kOlmoeTemplate =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ "
    "'<|system|>\\n' + message['content'] + '\\n' }}{% elif message['role'] == 'user' %}{{ "
    "'<|user|>\\n' + message['content'] + '\\n' }}{% elif message['role'] == 'assistant' %}{% if "
    "not loop.last %}{{ '<|assistant|>\\n'  + message['content'] + eos_token + '\\n' }}{% else "
    "%}{{ '<|assistant|>\\n'  + message['content'] + eos_token }}{% endif %}{% endif %}{% if "
    "loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}";

// meta-llama/Meta-Llama-3-8B-Instruct.
const char* kLlama3Template =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

// openai/gpt-oss-20b: the template's main logic (system message macro, developer message,
// message loop, generation prompt). The tool-definition macros, only reachable with `tools`,
// are left out.
const char* kGptOssTemplate =
    R"TPL({#- System Message Construction ============================================ #}
{%- macro build_system_message() -%}
    {%- if model_identity is not defined %}
        {%- set model_identity = "You are ChatGPT, a large language model trained by OpenAI." %}
    {%- endif %}
    {{- model_identity + "\n" }}
    {{- "Knowledge cutoff: 2024-06\n" }}
    {{- "Current date: " + strftime_now("%Y-%m-%d") + "\n\n" }}
    {%- if reasoning_effort is not defined %}
        {%- set reasoning_effort = "medium" %}
    {%- endif %}
    {{- "Reasoning: " + reasoning_effort + "\n\n" }}
    {{- "# Valid channels: analysis, commentary, final. Channel must be included for every message." }}
    {%- if tools -%}
        {{- "\nCalls to these tools must go to the commentary channel: 'functions'." }}
    {%- endif -%}
{%- endmacro -%}

{#- Main Template Logic ================================================= #}
{#- Render system message #}
{{- "<|start|>system<|message|>" }}
{{- build_system_message() }}
{{- "<|end|>" }}

{#- Extract developer message #}
{%- if messages[0].role == "developer" or messages[0].role == "system" %}
    {%- set developer_message = messages[0].content %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set developer_message = "" %}
    {%- set loop_messages = messages %}
{%- endif %}

{#- Render developer message #}
{%- if developer_message or tools %}
    {{- "<|start|>developer<|message|>" }}
    {%- if developer_message %}
        {{- "# Instructions\n\n" }}
        {{- developer_message }}
        {{- "\n\n" }}
    {%- endif %}
    {{- "<|end|>" }}
{%- endif %}

{#- Render messages #}
{%- set last_tool_call = namespace(name=none) %}
{%- for message in loop_messages -%}
    {%- if message.role == 'assistant' -%}
        {%- if "content" in message %}
            {%- if "<|channel|>analysis<|message|>" in message.content or "<|channel|>final<|message|>" in message.content %}
                {{- raise_exception("You have passed a message containing <|channel|> tags in the content field.") }}
            {%- endif %}
        {%- endif %}
        {%- if "tool_calls" in message %}
            {{- raise_exception("tool calls are not part of this excerpt") }}
        {%- elif loop.last and not add_generation_prompt %}
            {%- if "thinking" in message %}
                {{- "<|start|>assistant<|channel|>analysis<|message|>" + message.thinking + "<|end|>" }}
            {%- endif %}
            {{- "<|start|>assistant<|channel|>final<|message|>" + message.content + "<|return|>" }}
        {%- else %}
            {{- "<|start|>assistant<|channel|>final<|message|>" + message.content + "<|end|>" }}
            {%- set last_tool_call.name = none %}
        {%- endif %}
    {%- elif message.role == 'tool' -%}
        {%- if last_tool_call.name is none %}
            {{- raise_exception("Message has tool role, but there was no previous assistant message with a tool call!") }}
        {%- endif %}
    {%- elif message.role == 'user' -%}
        {{- "<|start|>user<|message|>" + message.content + "<|end|>" }}
    {%- endif -%}
{%- endfor -%}

{#- Generation prompt #}
{%- if add_generation_prompt -%}
<|start|>assistant
{%- endif -%})TPL";

// ---------------------------------------------------------------- expected renderings

const std::string kBosDs = "<｜begin▁of▁sentence｜>", kEosDs = "<｜end▁of▁sentence｜>";

const std::string kExpMixtral =
    "<s> [INST] You are a helpful assistant.\n\nHello! [/INST] Hi there! How can I help?</s> "
    "[INST] What is 2+2? [/INST]";
const std::string kExpChatML =
    "<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
    "<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?"
    "<|im_end|>\n<|im_start|>assistant\n";
const std::string kExpDeepSeek2 =
    "<｜begin▁of▁sentence｜>You are a helpful assistant.\n\nUser: Hello!\n\nAssistant: Hi there! "
    "How "
    "can I help?<｜end▁of▁sentence｜>User: What is 2+2?\n\nAssistant:";
const std::string kExpDeepSeek3 =
    "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>Hello!<｜Assistant｜>Hi there! "
    "How can "
    "I help?<｜end▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜>";
const std::string kExpOlmoe =
    "<|endoftext|><|system|>\nYou are a helpful assistant.\n<|user|>\nHello!\n<|assistant|>\nHi "
    "there! How can I help?<|endoftext|>\n<|user|>\nWhat is 2+2?\n<|assistant|>\n";
const std::string kExpLlama3 =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
    "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHi there! How can I help?<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n";
const std::string kExpHarmony =
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: medium\n\n# Valid channels: "
    "analysis, commentary, final. Channel must be included for every message.<|end|>"
    "<|start|>developer<|message|># Instructions\n\nYou are a helpful assistant.\n\n<|end|>"
    "<|start|>user<|message|>Hello!<|end|><|start|>assistant<|channel|>final<|message|>Hi there! "
    "How can I help?<|end|><|start|>user<|message|>What is 2+2?<|end|><|start|>assistant";

std::string builtin(ChatFormat f, const std::string& bos, const std::string& eos,
                    bool qwen_default = false) {
    ChatFormatOptions o;
    o.bos = bos;
    o.eos = eos;
    o.qwen_default_system = qwen_default;
    o.date = "2025-08-05";
    return moe::render_builtin_chat(f, kConv, true, o);
}

}  // namespace

// ---------------------------------------------------------------- official templates

TEST(ChatTemplateOfficial, Mixtral) {
    EXPECT_EQ(render_conv(kMixtralTemplate, kConv, "<s>", "</s>"), kExpMixtral);
}

TEST(ChatTemplateOfficial, MixtralV01RejectsSystemAndRendersWithout) {
    ChatFormatOptions o{"<s>", "</s>", false, ""};
    ChatRenderer r = ChatRenderer::from_template(kMixtralV01Template, ChatFormat::Plain, o);
    auto bad = r.render_template(kConv, true);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("Conversation roles must alternate"), std::string::npos)
        << bad.message();
    const std::vector<ChatMessage> no_sys(kConv.begin() + 1, kConv.end());
    EXPECT_EQ(render_conv(kMixtralV01Template, no_sys, "<s>", "</s>"),
              "<s>[INST] Hello! [/INST]Hi there! How can I help?</s>[INST] What is 2+2? [/INST]");
    // The renderer falls back to the built-in Mistral format when the template raises.
    EXPECT_EQ(r.render(kConv, true), kExpMixtral);
    EXPECT_NE(r.warning().find("Conversation roles must alternate"), std::string::npos);
}

// A template that grows past its render budget (issue #14) is a render error like any other:
// the chat falls back to the built-in format and says why.
TEST(ChatTemplateBudget, TemplateOverItsBudgetFallsBackAndSaysSo) {
    ChatFormatOptions o{"<s>", "</s>", false, ""};
    const std::string doubling =
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s }}";
    ChatRenderer r = ChatRenderer::from_template(doubling, ChatFormat::Mistral, o);
    EXPECT_EQ(r.render(kConv, true), render_builtin_chat(ChatFormat::Mistral, kConv, true, o));
    EXPECT_NE(r.warning().find("bytes"), std::string::npos) << r.warning();  // which limit
}

TEST(ChatTemplateOfficial, Qwen2) {
    EXPECT_EQ(render_conv(kQwen2Template, kConv, "", "<|im_end|>"), kExpChatML);
    const std::vector<ChatMessage> no_sys = {{"user", "Hi"}};
    EXPECT_EQ(render_conv(kQwen2Template, no_sys, "", "<|im_end|>"),
              "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi"
              "<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateOfficial, Qwen3) {
    EXPECT_EQ(render_conv(kQwen3Template, kConv, "", "<|im_end|>"), kExpChatML);
    // A reply that carried its reasoning: earlier turns drop it.
    std::vector<ChatMessage> think = kConv;
    think[2].content = "<think>\nsimple\n</think>\n\nHi there! How can I help?";
    EXPECT_EQ(render_conv(kQwen3Template, think, "", "<|im_end|>"), kExpChatML);
    // The last assistant turn after the last user query keeps it.
    std::vector<ChatMessage> last = {{"user", "Q"}, {"assistant", "<think>r</think>A"}};
    EXPECT_EQ(render_conv(kQwen3Template, last, "", "<|im_end|>", false),
              "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nA"
              "<|im_end|>\n");
}

TEST(ChatTemplateOfficial, Qwen3EnableThinkingFalse) {
    auto t = Template::parse(kQwen3Template);
    ASSERT_TRUE(t.ok()) << t.message();
    auto r = t->render(moe::jinja::from_json(nlohmann::ordered_json::parse(
        R"({"messages":[{"role":"user","content":"Q"}],"add_generation_prompt":true,
            "enable_thinking":false})")));
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(*r, "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplateOfficial, Qwen3Tools) {
    auto t = Template::parse(kQwen3Template);
    ASSERT_TRUE(t.ok()) << t.message();
    auto r = t->render(moe::jinja::from_json(nlohmann::ordered_json::parse(R"({
        "messages":[{"role":"user","content":"Weather?"},
                    {"role":"assistant","content":"","tool_calls":[{"type":"function",
                     "function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},
                    {"role":"tool","content":"sunny"}],
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}],
        "add_generation_prompt":true})")));
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(
        *r,
        "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the "
        "user query.\n\nYou are provided with function signatures within <tools></tools> XML "
        "tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
        "\"parameters\": {}}}\n</tools>\n\nFor each function call, return a json object with "
        "function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
        "<|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
        "</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response>"
        "<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateOfficial, DeepSeek2) {
    EXPECT_EQ(render_conv(kDeepSeek2Template, kConv, kBosDs, kEosDs), kExpDeepSeek2);
}

TEST(ChatTemplateOfficial, DeepSeek3) {
    EXPECT_EQ(render_conv(kDeepSeek3Template, kConv, kBosDs, kEosDs), kExpDeepSeek3);
}

TEST(ChatTemplateOfficial, Olmoe) {
    EXPECT_EQ(render_conv(kOlmoeTemplate, kConv, "<|endoftext|>", "<|endoftext|>"), kExpOlmoe);
}

TEST(ChatTemplateOfficial, Llama3) {
    std::vector<ChatMessage> padded = kConv;
    padded[1].content = "  Hello!\n";  // the template trims message content
    EXPECT_EQ(render_conv(kLlama3Template, padded, "<|begin_of_text|>", "<|eot_id|>"), kExpLlama3);
}

TEST(ChatTemplateOfficial, GptOss) {
    auto t = Template::parse(kGptOssTemplate);
    ASSERT_TRUE(t.ok()) << t.message();
    Value ctx = Value::object();
    moe::jinja::Array msgs;
    for (const auto& m : kConv) {
        Value o = Value::object();
        o.set("role", m.role);
        o.set("content", m.content);
        msgs.push_back(o);
    }
    ctx.set("messages", Value(msgs));
    ctx.set("add_generation_prompt", true);
    ctx.set("strftime_now", Value::function([](moe::jinja::CallArgs& a) -> Value {
                EXPECT_EQ(moe::jinja::to_str(a.get(0, "format")), "%Y-%m-%d");
                return Value("2025-08-05");
            }));
    auto r = t->render(ctx);
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(*r, kExpHarmony);
    // Without the generation prompt the last assistant turn ends with <|return|>.
    msgs.pop_back();
    ctx.set("messages", Value(msgs));
    ctx.set("add_generation_prompt", false);
    auto r2 = t->render(ctx);
    ASSERT_TRUE(r2.ok()) << r2.message();
    const std::string tail =
        "<|start|>assistant<|channel|>final<|message|>Hi there! How can I help?<|return|>";
    EXPECT_EQ(r2->substr(r2->size() - tail.size()), tail);
}

// ---------------------------------------------------------------- built-in formats

TEST(ChatTemplateBuiltin, Mistral) {
    EXPECT_EQ(builtin(ChatFormat::Mistral, "<s>", "</s>"), kExpMixtral);
}
TEST(ChatTemplateBuiltin, ChatML) {
    EXPECT_EQ(builtin(ChatFormat::ChatML, "", "<|im_end|>"), kExpChatML);
    EXPECT_EQ(builtin(ChatFormat::ChatML, "", "<|im_end|>", true), kExpChatML);
    ChatFormatOptions o;
    o.qwen_default_system = true;
    EXPECT_EQ(moe::render_builtin_chat(ChatFormat::ChatML, {{"user", "Hi"}}, true, o),
              "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi"
              "<|im_end|>\n<|im_start|>assistant\n");
}
TEST(ChatTemplateBuiltin, DeepSeek2) {
    EXPECT_EQ(builtin(ChatFormat::DeepSeek2, kBosDs, kEosDs), kExpDeepSeek2);
}
TEST(ChatTemplateBuiltin, DeepSeek3) {
    EXPECT_EQ(builtin(ChatFormat::DeepSeek3, kBosDs, kEosDs), kExpDeepSeek3);
}
TEST(ChatTemplateBuiltin, Olmoe) {
    EXPECT_EQ(builtin(ChatFormat::OLMoE, "<|endoftext|>", "<|endoftext|>"), kExpOlmoe);
}
TEST(ChatTemplateBuiltin, Llama3) {
    EXPECT_EQ(builtin(ChatFormat::Llama3, "<|begin_of_text|>", "<|eot_id|>"), kExpLlama3);
}
TEST(ChatTemplateBuiltin, Harmony) {
    EXPECT_EQ(builtin(ChatFormat::Harmony, "", ""), kExpHarmony);
}
TEST(ChatTemplateBuiltin, Plain) {
    EXPECT_EQ(builtin(ChatFormat::Plain, "<s>", "</s>"),
              "You are a helpful assistant.\n\nUser: Hello!\nAssistant: Hi there! How can I help?\n"
              "User: What is 2+2?\nAssistant:");
}

TEST(ChatTemplateBuiltin, FingerprintOfTemplates) {
    EXPECT_EQ(moe::chat_format_from_template(kMixtralTemplate), ChatFormat::Mistral);
    EXPECT_EQ(moe::chat_format_from_template(kQwen2Template), ChatFormat::ChatML);
    EXPECT_EQ(moe::chat_format_from_template(kQwen3Template), ChatFormat::ChatML);
    EXPECT_EQ(moe::chat_format_from_template(kDeepSeek2Template), ChatFormat::DeepSeek2);
    EXPECT_EQ(moe::chat_format_from_template(kDeepSeek3Template), ChatFormat::DeepSeek3);
    EXPECT_EQ(moe::chat_format_from_template(kOlmoeTemplate), ChatFormat::OLMoE);
    EXPECT_EQ(moe::chat_format_from_template(kLlama3Template), ChatFormat::Llama3);
    EXPECT_EQ(moe::chat_format_from_template(kGptOssTemplate), ChatFormat::Harmony);
}

TEST(ChatTemplateBuiltin, BrokenTemplateFallsBack) {
    ChatFormatOptions o{"<s>", "</s>", false, ""};
    ChatRenderer r =
        ChatRenderer::from_template("{% for m in messages %}[INST]", ChatFormat::Plain, o);
    EXPECT_FALSE(r.has_template());
    EXPECT_NE(r.warning().find("endfor"), std::string::npos) << r.warning();
    EXPECT_EQ(r.render(kConv, true), kExpMixtral);
}

// ---------------------------------------------------------------- interpreter constructs

TEST(Jinja, TextAndOutput) {
    EXPECT_EQ(render("plain text"), "plain text");
    EXPECT_EQ(render("{{ 'a' }}{{ \"b\" }}{{ 1 }}{{ 2.5 }}{{ true }}{{ none }}{{ x }}"),
              "ab12.5TrueNone");
    EXPECT_EQ(render("{{ [1, 'a', none] }} {{ {'k': 1} }}"), "[1, 'a', None] {'k': 1}");
    EXPECT_EQ(render("{{ 'it\\'s' }}|{{ \"tab\\tnl\\n\" }}"), "it's|tab\tnl\n");
}

TEST(Jinja, WhitespaceControl) {
    EXPECT_EQ(render("a  {{- 'b' -}}  c"), "abc");
    EXPECT_EQ(render("a\n{% if true %}\nb\n{% endif %}\nc"), "a\nb\nc");  // trim_blocks
    EXPECT_EQ(render("a\n    {% if true %}b{% endif %}"), "a\nb");        // lstrip_blocks
    EXPECT_EQ(render("a\n    {%+ if true %}b{% endif %}"), "a\n    b");
    EXPECT_EQ(render("{% if true +%}\nx{% endif %}"), "\nx");
    EXPECT_EQ(render("x {# comment #} y"), "x  y");
    EXPECT_EQ(render("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
}

TEST(Jinja, IfElifElse) {
    const char* t = "{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}";
    EXPECT_EQ(render(t, R"({"n":1})"), "one");
    EXPECT_EQ(render(t, R"({"n":2})"), "two");
    EXPECT_EQ(render(t, R"({"n":3})"), "many");
    EXPECT_EQ(render("{% if not x %}no x{% endif %}"), "no x");
}

TEST(Jinja, ForLoopVariables) {
    EXPECT_EQ(render("{% for x in xs %}{{ loop.index0 }}{{ loop.index }}{{ x }}"
                     "{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %},{% endfor %}",
                     R"({"xs":["a","b","c"]})"),
              "01aF,12b,23cL,");
    EXPECT_EQ(render("{% for x in xs %}{{ loop.length }}{{ loop.revindex0 }}{% endfor %}",
                     R"({"xs":[1,2]})"),
              "2120");
    EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
    EXPECT_EQ(render("{% for x in range(6) if x is even %}{{ x }}{% endfor %}"), "024");
    EXPECT_EQ(
        render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", R"({"d":{"b":1,"a":2}})"),
        "b=1;a=2;");
    EXPECT_EQ(render("{% for x in range(10) %}{% if x == 3 %}{% break %}{% endif %}"
                     "{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}"),
              "02");
    EXPECT_EQ(
        render("{% for x in xs %}{{ loop.cycle('a', 'b') }}{% endfor %}", R"({"xs":[1,2,3]})"),
        "aba");
    EXPECT_EQ(render("{% for c in 'héj' %}[{{ c }}]{% endfor %}"), "[h][é][j]");
}

TEST(Jinja, SetScopingAndNamespace) {
    // A set inside a loop does not leak out of it; a namespace carries state across iterations.
    EXPECT_EQ(render("{% set x = 1 %}{% for i in [1,2] %}{% set x = 5 %}{% endfor %}{{ x }}"), "1");
    EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}"
                     "{% endfor %}{{ ns.n }}"),
              "6");
    EXPECT_EQ(render("{% if true %}{% set y = 'set in if' %}{% endif %}{{ y }}"), "set in if");
    EXPECT_EQ(render("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
    EXPECT_EQ(render("{% set blk %}  hi {{ 1 + 1 }}{% endset %}[{{ blk }}]"), "[  hi 2]");
    EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.v = 'x' %}{{ ns.v }}"), "x");
}

TEST(Jinja, Expressions) {
    EXPECT_EQ(render("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} "
                     "{{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}"),
              "7 9 3 -4 1 2 3.5 1024");
    EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 2 }}"),
              "a1None ab [1, 2] abab");
    EXPECT_EQ(render("{{ 1 < 2 and 2 <= 2 and 3 > 2 and 3 >= 4 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }}"),
              "False True True");
    EXPECT_EQ(
        render("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }}"),
        "True True True True");
    EXPECT_EQ(render("{{ 'yes' if x else 'no' }} {{ x or 'dflt' }} {{ 0 and 1 }}"), "no dflt 0");
    EXPECT_EQ(render("{{ not 1 == 2 }} {{ -3 }} {{ - (2 + 1) }}"), "True -3 -3");
    EXPECT_EQ(render("{{ 'x' if false }}|"), "|");
}

TEST(Jinja, IndexingAndSlicing) {
    const char* ctx = R"({"xs":[1,2,3,4],"s":"hello","d":{"a":{"b":"deep"}}})";
    EXPECT_EQ(render("{{ xs[0] }}{{ xs[-1] }}{{ xs[1:3] }}{{ xs[::-1] }}{{ xs[:-1] }}", ctx),
              "14[2, 3][4, 3, 2, 1][1, 2, 3]");
    EXPECT_EQ(render("{{ s[1:] }} {{ s[-3:] }} {{ s[0] }} {{ s[::2] }}", ctx), "ello llo h hlo");
    EXPECT_EQ(
        render("{{ d.a.b }} {{ d['a']['b'] }} {{ d.missing is defined }} {{ xs[10] is defined }}",
               ctx),
        "deep deep False False");
}

TEST(Jinja, Filters) {
    const char* ctx = R"({"xs":[{"n":"b","v":2},{"n":"a","v":1}],"s":"  Hi There  "})";
    EXPECT_EQ(render("[{{ s | trim }}] {{ s | length }} {{ xs | length }} {{ s | trim | upper }} "
                     "{{ s | lower | trim }}",
                     ctx),
              "[Hi There] 12 2 HI THERE hi there");
    EXPECT_EQ(render("{{ ['a','b'] | join(', ') }} {{ xs | map(attribute='n') | join }} "
                     "{{ xs | selectattr('v', 'equalto', 1) | map(attribute='n') | list }}",
                     ctx),
              "a, b ba ['a']");
    EXPECT_EQ(render("{{ x | default('d') }} {{ '' | default('e', true) }} {{ [3,1] | first }} "
                     "{{ [3,1] | last }} {{ 'abc' | reverse }} {{ [2,1,3] | sort }} {{ [1,1,2] | "
                     "unique | list }}"),
              "d e 3 1 cba [1, 2, 3] [1, 2]");
    EXPECT_EQ(render("{{ 'a-b' | replace('-', '+') }} {{ '42' | int + 1 }} {{ 3 | string ~ 'x' }} "
                     "{{ 'hello world' | title }} {{ 'HELLO' | capitalize }} {{ -2 | abs }}"),
              "a+b 43 3x Hello World Hello 2");
    EXPECT_EQ(
        render("{{ xs | rejectattr('v', 'equalto', 1) | map(attribute='n') | first }} "
               "{{ [1, 2, 3, 4] | select('odd') | list }} {{ {'b': 1, 'a': 2} | items | list }}",
               ctx),
        "b [1, 3] [['b', 1], ['a', 2]]");
    EXPECT_EQ(render("{% filter upper %}shout{% endfilter %}"), "SHOUT");
    EXPECT_EQ(render("{{ 'a\nb' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}"), "a\n  b|  a\n  b");
}

TEST(Jinja, ToJson) {
    const char* ctx = R"({"v":{"name":"f","args":{"x":[1,2.5,true,null,"q\"\n"]},"e":{},"l":[]}})";
    EXPECT_EQ(render("{{ v | tojson }}", ctx),
              "{\"name\": \"f\", \"args\": {\"x\": [1, 2.5, true, null, \"q\\\"\\n\"]}, \"e\": {}, "
              "\"l\": []}");
    EXPECT_EQ(render("{{ {'a': [1, 2]} | tojson(indent=2) }}"),
              "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
    EXPECT_EQ(render("{{ 'héllo' | tojson }}"), "\"héllo\"");
}

TEST(Jinja, Tests) {
    EXPECT_EQ(render("{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}"
                     "{{ 1 is number }}{{ 1 is integer }}{{ 1.5 is float }}{{ {} is mapping }}"
                     "{{ [] is iterable }}{{ 'a' is not mapping }}{{ 4 is divisibleby(2) }}"
                     "{{ 3 is odd }}{{ true is boolean }}{{ false is false }}"),
              "FalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
    EXPECT_EQ(render("{{ 1 is equalto 1 }} {{ 2 is sameas 2 }} {{ 'ab' is lower }}"),
              "True True True");
}

TEST(Jinja, StringMethods) {
    EXPECT_EQ(
        render("{{ ' x '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\nab'.lstrip('\\n') }}|"
               "{{ 'ab\\n'.rstrip() }}|{{ 'a,b,c'.split(',') }}|{{ 'a b  c'.split() }}|"
               "{{ 'a</think>b'.split('</think>')[-1] }}|{{ 'abc'.startswith('ab') }}|"
               "{{ 'abc'.endswith(('x', 'c')) }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|"
               "{{ 'a-b'.replace('-', '') }}|{{ 'hello'.title() }}|{{ ', '.join(['a', 'b']) }}"),
        "x|a|ab|ab|['a', 'b', 'c']|['a', 'b', 'c']|b|True|True|ABab|ab|Hello|a, b");
    EXPECT_EQ(
        render("{{ d.get('a') }} {{ d.get('z', 'dflt') }} {{ d.get('z') }} {{ d.keys() | list }} "
               "{{ d.values() | list }}",
               R"({"d":{"a":1}})"),
        "1 dflt None ['a'] [1]");
}

TEST(Jinja, Macros) {
    EXPECT_EQ(
        render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
               "{{ greet('Ann') }} {{ greet('Bob', '?') }} {{ greet(name='Cy', punct='.') }}"),
        "Hi Ann! Hi Bob? Hi Cy.");
    // Recursive macro.
    EXPECT_EQ(render("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * (fact(n - 1) | int) }}"
                     "{% endif %}{% endmacro %}{{ fact(5) }}"),
              "120");
    // Macros see top-level names and globals, not the caller's loop variables.
    EXPECT_EQ(render("{% set g = 'G' %}{% macro m() %}{{ g }}{{ bos_token }}{{ i }}{% endmacro %}"
                     "{% for i in [1] %}{{ m() }}{% endfor %}",
                     R"({"bos_token":"<s>"})"),
              "G<s>");
}

TEST(Jinja, RaiseException) {
    const std::string e = render_error("{{ raise_exception('bad roles') }}");
    EXPECT_NE(e.find("bad roles"), std::string::npos) << e;
    EXPECT_NE(e.find("line 1"), std::string::npos) << e;
}

TEST(Jinja, StrftimeNow) {
    const std::string y = render("{{ strftime_now('%Y') }}");
    ASSERT_EQ(y.size(), 4u);
    EXPECT_GE(std::stoi(y), 2024);
}

// ---------------------------------------------------------------- bad templates

TEST(JinjaErrors, ClearMessagesNeverCrash) {
    struct Case {
        const char* tmpl;
        const char* needle;
    };
    const Case cases[] = {
        {"{{ x ", "unterminated '{{'"},
        {"{% if x %}a", "missing '{% endif %}'"},
        {"{% for x in y %}a{% endif %}", "endfor"},
        {"{% if x %}a{% endfor %}", "endif"},
        {"{% endif %}", "no open block"},
        {"{# comment", "unterminated comment"},
        {"{{ 'abc }}", "unterminated string"},
        {"{{ x | nosuchfilter }}", "unknown filter 'nosuchfilter'"},
        {"{{ x is nosuchtest }}", "unknown test 'nosuchtest'"},
        {"{% nosuchtag %}", "unknown tag 'nosuchtag'"},
        {"{% include 'other.j2' %}", "unsupported tag 'include'"},
        {"{{ 1 + }}", "unexpected"},
        {"{{ (1 }}", "expected ')'"},
        {"{{ x.y }}", "'x' is undefined"},
        {"{{ 1 + 'a' }}", "unsupported operand"},
        {"{{ 1 / 0 }}", "division by zero"},
        {"{% set x = 1 %}{% set x.y = 2 %}", "namespace"},
        {"{{ none() }}", "not callable"},
        {"{% for x in none %}{% endfor %}", "iterate"},
        {"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion too deep"},
        {"{% for i in range(100000000) %}{% endfor %}", "too large"},
        {"{{ 'x' * 100000000000 }}", "too large"},
        {"{% raw %}never closed", "endraw"},
        {"{{ }}", "unexpected"},
        {"{% break %}", "outside a loop"},
    };
    for (const auto& c : cases) {
        const std::string e = render_error(c.tmpl);
        EXPECT_NE(e.find(c.needle), std::string::npos)
            << "template: " << c.tmpl << "\nerror: " << e;
        EXPECT_EQ(e.rfind("chat template", 0), 0u) << e;
    }
}

TEST(JinjaErrors, DeepNesting) {
    std::string deep_expr = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
    EXPECT_NE(render_error(deep_expr).find("nested too deeply"), std::string::npos);
    std::string deep_blocks;
    for (int i = 0; i < 5000; ++i) deep_blocks += "{% if true %}";
    EXPECT_NE(render_error(deep_blocks).find("nested too deeply"), std::string::npos);
    std::string deep_not = "{{ " + [] {
        std::string s;
        for (int i = 0; i < 5000; ++i) s += "not ";
        return s;
    }() + "x }}";
    EXPECT_NE(render_error(deep_not).find("nested too deeply"), std::string::npos);
    std::string deep_list = "{{ " + std::string(5000, '[') + std::string(5000, ']') + " }}";
    EXPECT_NE(render_error(deep_list).find("nested too deeply"), std::string::npos);
    std::string deep_filter = "{{ x";
    for (int i = 0; i < 5000; ++i) deep_filter += " | trim";
    deep_filter += " }}";
    EXPECT_NE(render_error(deep_filter).find("nested too deeply"), std::string::npos);
}

TEST(JinjaErrors, ErrorPositionIsReported) {
    const std::string e = render_error("line one\n{{ x | bogus }}");
    EXPECT_NE(e.find("line 2"), std::string::npos) << e;
}
