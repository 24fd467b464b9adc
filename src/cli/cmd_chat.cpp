// `moeinfer chat [-m MODEL] [--system TEXT] [sampling options]`: interactive multi-turn chat in
// the terminal. Each turn renders the whole conversation with the model's chat template (or its
// family's built-in format) and evaluates only the tokens beyond what the KV cache already holds
// (from the first token that differs, when the rendering of earlier turns changed). Replies
// stream as they are sampled; Ctrl-C stops a reply, Ctrl-C at the prompt, /exit or EOF quit,
// /reset starts a new conversation.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <span>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "models/model.h"
#include "runtime/detokenizer.h"
#include "runtime/generate.h"
#include "runtime/stop_strings.h"

namespace moe::cli {
namespace {

std::atomic<bool> g_generating{false};
std::atomic<bool> g_interrupted{false};

extern "C" void chat_on_sigint(int) {
    if (g_generating.load()) {
        g_interrupted.store(true);
        return;
    }
    // At the prompt: quit (only async-signal-safe calls here).
    const char nl = '\n';
    [[maybe_unused]] ssize_t w = write(STDOUT_FILENO, &nl, 1);
    _exit(130);
}

struct ChatArgs {
    KvTypes kv;
    std::string model, system;
    int n_predict = 512, threads = 0, ctx = 0;
    bool ignore_eos = false;
    SamplerParams sp;
};

// Evaluates `tokens` at positions pos0.. of sequence 0; returns the last token's logits.
Result<std::vector<float>> eval_at(Session& s, std::span<const int32_t> tokens, int pos0) {
    if (tokens.empty()) return make_error("no tokens to evaluate");
    if (int64_t(pos0) + int64_t(tokens.size()) > s.n_ctx())
        return make_error(
            "the conversation ({} tokens) exceeds the context of {} (use /reset or "
            "raise -c)",
            int64_t(pos0) + int64_t(tokens.size()), s.n_ctx());
    std::vector<float> last;
    constexpr size_t kChunk = 512;
    for (size_t i0 = 0; i0 < tokens.size(); i0 += kChunk) {
        const size_t i1 = std::min(tokens.size(), i0 + kChunk);
        Batch b;
        for (size_t i = i0; i < i1; ++i)
            b.add(tokens[i], pos0 + int32_t(i), 0, i + 1 == tokens.size());
        MOE_TRY(auto logits, s.eval(b));
        if (i1 == tokens.size()) last = std::move(logits);
    }
    return last;
}

std::string trim_ws(const std::string& s) {
    size_t a = 0, b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
    return s.substr(a, b - a);
}

int run_chat(ChatArgs a) {
    if (auto ok = a.sp.validate(); !ok) return report(ok.message());
    if (a.model.empty()) a.model = default_model_path();
    auto model = load_model(a.model);
    if (!model) return report(model.message());
    auto tok = Tokenizer::from_source(*(*model)->source);
    if (!tok) return report(fmt::format("{}: {}", a.model, tok.message()));
    SessionOptions so;
    so.n_threads = a.threads;
    so.kv_types = a.kv;
    so.n_ctx = a.ctx;
    auto session = Session::create(**model, so);
    if (!session) return report(session.message());
    Session& s = **session;
    const Tokenizer& tk = **tok;
    const int n_vocab = (*model)->config.n_vocab;

    const ChatRenderer renderer = ChatRenderer::from_source(*(*model)->source);
    const std::vector<std::string> stops = chat_stop_strings(renderer.fallback());
    const std::string& bos_text = renderer.options().bos;
    fmt::print(stderr, "model: {} ({}), chat format: {}, context: {} tokens\n", a.model,
               (*model)->config.family, renderer.describe(), s.n_ctx());
    fmt::print(stderr, "type a message; /reset starts over, /exit quits, Ctrl-C stops a reply\n");

    struct sigaction sa {};
    sa.sa_handler = chat_on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    struct sigaction old_sa {};
    sigaction(SIGINT, &sa, &old_sa);

    std::vector<ChatMessage> msgs;
    auto start_conversation = [&] {
        msgs.clear();
        if (!a.system.empty()) msgs.push_back({"system", a.system});
    };
    start_conversation();
    std::vector<int32_t> cached;  // tokens whose keys/values are in the cache, positions 0..
    Sampler sampler(a.sp);
    std::string last_warning;

    std::string line;
    while (true) {
        std::fputs("> ", stdout);
        std::fflush(stdout);
        if (!std::getline(std::cin, line)) {
            std::fputs("\n", stdout);
            break;
        }
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const std::string cmd = trim_ws(line);
        if (cmd == "/exit" || cmd == "/quit") break;
        if (cmd == "/reset") {
            start_conversation();
            cached.clear();
            std::fputs("(conversation cleared)\n", stdout);
            std::fflush(stdout);
            continue;
        }
        if (cmd.empty()) continue;

        msgs.push_back({"user", line});
        const std::string prompt = renderer.render(msgs, /*add_generation_prompt=*/true);
        if (renderer.warning() != last_warning) {
            last_warning = renderer.warning();
            if (!last_warning.empty())
                fmt::print(stderr, "warning: {}; using the built-in '{}' format\n", last_warning,
                           chat_format_name(renderer.fallback()));
        }
        const bool add_bos = bos_text.empty() || prompt.compare(0, bos_text.size(), bos_text) != 0;
        const std::vector<int32_t> toks = tk.encode(prompt, add_bos, /*parse_special=*/true);

        // Reuse the cached prefix; evaluate from the first token that differs.
        size_t p = 0;
        while (p < toks.size() && p < cached.size() && toks[p] == cached[p]) ++p;
        if (p == toks.size() && p > 0) --p;  // need at least one token for fresh logits
        cached.resize(p);
        const std::span<const int32_t> suffix(toks.data() + p, toks.size() - p);

        g_interrupted.store(false);
        g_generating.store(true);
        const double t0 = now_seconds();
        auto logits = eval_at(s, suffix, int(p));
        const double t_prompt = now_seconds() - t0;
        if (!logits) {
            g_generating.store(false);
            fmt::print(stderr, "error: {}\n", logits.message());
            msgs.pop_back();
            continue;
        }
        cached.insert(cached.end(), suffix.begin(), suffix.end());
        for (int32_t t : suffix) sampler.accept(t);

        std::vector<int32_t> reply;
        std::string final_text;  // the reply as shown, kept in the conversation
        auto show = [&](const std::string& piece) {
            if (piece.empty()) return;
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            final_text += piece;
        };
        // The reply decodes on its own (as the conversation stores it), not after the prompt.
        IncrementalDecoder detok(tk, {});
        StopMatcher stop(stops);
        const double t1 = now_seconds();
        for (int i = 0; i < a.n_predict && !g_interrupted.load(); ++i) {
            if (int(cached.size()) >= s.n_ctx()) break;
            const int32_t next = sampler.sample(logits->data(), n_vocab);
            sampler.accept_generated(next);
            if (!a.ignore_eos && tk.is_eog(next)) break;
            reply.push_back(next);
            show(stop.push(detok.push(next)));
            if (stop.stopped()) break;
            const int32_t one[1] = {next};
            auto lg = eval_at(s, one, int(cached.size()));
            if (!lg) {
                fmt::print(stderr, "\nerror: {}\n", lg.message());
                break;
            }
            cached.push_back(next);
            logits = std::move(lg);
        }
        show(stop.push(detok.flush()));
        show(stop.flush());
        const double t_gen = now_seconds() - t1;
        const bool interrupted = g_interrupted.load();
        g_generating.store(false);
        std::fputs("\n", stdout);
        std::fflush(stdout);
        if (interrupted) fmt::print(stderr, "[reply stopped]\n");
        fmt::print(
            stderr,
            "[prompt: {} new tokens ({} cached), {:.1f} tok/s; reply: {} tokens, {:.1f} tok/s]\n",
            suffix.size(), p, suffix.size() / std::max(t_prompt, 1e-9), reply.size(),
            reply.size() / std::max(t_gen, 1e-9));
        msgs.push_back({"assistant", trim_ws(final_text)});
    }
    sigaction(SIGINT, &old_sa, nullptr);
    return 0;
}

}  // namespace

void register_chat_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<ChatArgs>();
    auto* cmd = app.add_subcommand("chat", "interactive multi-turn chat in the terminal");
    cmd->add_option("-m,--model", a->model, "GGUF file or HF folder (default: bundled demo MoE)");
    add_weight_memory_options(cmd);
    add_kv_cache_options(cmd, a->kv);
    cmd->add_option("--system", a->system, "system message");
    cmd->add_option("-n,--n-predict", a->n_predict, "max tokens per reply")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--ignore-eos", a->ignore_eos, "keep generating past end-of-generation tokens");
    cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
    cmd->add_option("-c,--ctx-size", a->ctx, "context size (default: model's, max 4096)")
        ->check(kContextRange);
    add_sampling_options(cmd, a->sp);
    cmd->callback([a, &exit_code] { exit_code = run_chat(*a); });
}

}  // namespace moe::cli
