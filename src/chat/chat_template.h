// Chat prompts: a conversation (role + content messages) rendered to the text a model was trained
// on. The model file's own Jinja template (tokenizer.chat_template) comes first; when there is
// none, or it fails to render, a built-in format for the model family is used.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "chat/jinja.h"
#include "core/result.h"
#include "formats/model_source.h"

namespace moe {

struct ChatMessage {
    std::string role;  // "system", "user", "assistant" (gpt-oss also "developer")
    std::string content;
};

// Built-in formats, written from each family's published chat format.
enum class ChatFormat {
    Plain,      // "User: ...\nAssistant: ..." for unknown families
    ChatML,     // Qwen: <|im_start|>role\n...<|im_end|>\n
    Mistral,    // Mixtral / Mistral: [INST] ... [/INST]
    Llama3,     // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
    DeepSeek2,  // User: ...\n\nAssistant: ...
    DeepSeek3,  // <｜User｜>...<｜Assistant｜>...
    OLMoE,      // <|user|>\n...\n<|assistant|>\n...
    Harmony,    // gpt-oss: <|start|>role<|message|>...<|end|>
};

const char* chat_format_name(ChatFormat f);

struct ChatFormatOptions {
    std::string bos, eos;              // special token texts ("" if the vocab has none)
    bool qwen_default_system = false;  // Qwen1.5/Qwen2: add "You are a helpful assistant." system
    std::string date;                  // Harmony "Current date:" (default: today, YYYY-MM-DD)
};

// Renders `msgs` in a built-in format; add_generation_prompt appends the assistant header.
std::string render_builtin_chat(ChatFormat f, const std::vector<ChatMessage>& msgs,
                                bool add_generation_prompt, const ChatFormatOptions& opt);

// Texts that end an assistant turn in a built-in format (used as stop strings by the chat loop
// when the model does not emit an end-of-generation token).
std::vector<std::string> chat_stop_strings(ChatFormat f);

// Best built-in format for a model: by general.architecture and vocabulary.
ChatFormat detect_chat_format(const ModelSource& src);
// Guess the format a Jinja template produces from its text (nullopt if unrecognised).
std::optional<ChatFormat> chat_format_from_template(const std::string& tmpl);

// Renders conversations for one model: its Jinja template when present and working, else the
// family's built-in format.
class ChatRenderer {
public:
    static ChatRenderer from_source(const ModelSource& src);
    // template_text may be empty (built-in format only).
    static ChatRenderer from_template(const std::string& template_text, ChatFormat fallback,
                                      ChatFormatOptions opt);

    // Never fails for the built-in formats; a template error falls back (see warning()).
    std::string render(const std::vector<ChatMessage>& msgs, bool add_generation_prompt) const;
    // The template only (errors are returned, not hidden by the fallback). `kwargs` (a JSON
    // object, e.g. the server's chat_template_kwargs {"enable_thinking": false}) adds variables to
    // the template context; messages, add_generation_prompt and the special tokens win.
    Result<std::string> render_template(
        const std::vector<ChatMessage>& msgs, bool add_generation_prompt,
        const nlohmann::ordered_json& kwargs = nlohmann::ordered_json::object()) const;

    bool has_template() const { return tmpl_.has_value(); }
    ChatFormat fallback() const { return fallback_; }
    const ChatFormatOptions& options() const { return opt_; }
    // Why the template is not used ("" while it is); updated by render().
    const std::string& warning() const { return warning_; }
    std::string describe() const;

private:
    std::optional<jinja::Template> tmpl_;
    ChatFormat fallback_ = ChatFormat::Plain;
    ChatFormatOptions opt_;
    mutable std::string warning_;
};

// render_chat(src, msgs, add_generation_prompt): the model's template, else its family's format.
Result<std::string> render_chat(const ModelSource& src, const std::vector<ChatMessage>& msgs,
                                bool add_generation_prompt);

}  // namespace moe
