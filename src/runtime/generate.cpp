#include "runtime/generate.h"

#include <chrono>

namespace moe {
namespace {
double seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}
}  // namespace

size_t complete_utf8_prefix(std::string_view s) {
    // Walk back over at most 3 continuation bytes to the last lead byte.
    size_t n = s.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        const unsigned char c = static_cast<unsigned char>(s[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte
        size_t need = 1;
        if ((c & 0xE0) == 0xC0) need = 2;
        else if ((c & 0xF0) == 0xE0) need = 3;
        else if ((c & 0xF8) == 0xF0) need = 4;
        return back >= need ? n : n - back;
    }
    return n;
}

Result<GenerateStats> generate(Session& s, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                               int n_predict, Sampler& sampler,
                               const std::function<bool(std::string_view)>& on_text, int seq,
                               const RoutingObserver& on_routing) {
    GenerateStats st;
    if (prompt.empty()) return make_error("empty prompt");
    const int n_vocab = s.model().config.n_vocab;
    for (int32_t t : prompt) sampler.accept(t);
    double t0 = seconds();
    RouterTrace trace;
    RouterTrace* tp = on_routing ? &trace : nullptr;
    MOE_TRY(auto logits, s.eval_tokens(prompt, false, seq, tp));
    st.n_prompt = int(prompt.size());
    st.prompt_seconds = seconds() - t0;
    if (tp) on_routing(trace, int64_t(prompt.size()), true);

    // Decode generated tokens after the prompt so SentencePiece's leading-space handling and
    // multi-token UTF-8 sequences come out exactly as a whole-sequence decode would.
    std::vector<int32_t> all = prompt;
    const std::string prompt_text = tok.decode(all, /*skip_special=*/false);
    auto generated_text = [&] {
        const std::string full = tok.decode(all, false);
        return full.compare(0, prompt_text.size(), prompt_text) == 0 ? full.substr(prompt_text.size())
                                                                     : full;
    };
    std::string emitted;  // text already streamed
    t0 = seconds();
    for (int i = 0; i < n_predict; ++i) {
        if (s.n_past(seq) >= s.n_ctx()) break;
        const int32_t next = sampler.sample(logits.data(), n_vocab);
        sampler.accept(next);
        if (tok.is_eog(next)) {
            st.stopped_by_eog = true;
            break;
        }
        all.push_back(next);
        ++st.n_generated;
        const std::string text = generated_text();
        const size_t upto = complete_utf8_prefix(text);
        if (upto > emitted.size() && text.compare(0, emitted.size(), emitted) == 0) {
            if (!on_text(std::string_view(text).substr(emitted.size(), upto - emitted.size()))) break;
            emitted = text.substr(0, upto);
        }
        if (i + 1 == n_predict || s.n_past(seq) >= s.n_ctx()) break;
        const int32_t one[1] = {next};
        if (tp) trace = RouterTrace{};
        MOE_TRY(logits, s.eval_tokens(one, false, seq, tp));
        if (tp) on_routing(trace, 1, false);
    }
    st.gen_seconds = seconds() - t0;
    const std::string text = generated_text();
    if (text.size() > emitted.size() && text.compare(0, emitted.size(), emitted) == 0)
        on_text(std::string_view(text).substr(emitted.size()));
    return st;
}

}  // namespace moe
