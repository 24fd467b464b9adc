#include "runtime/generate.h"

#include <chrono>

#include "runtime/detokenizer.h"

namespace moe {
namespace {
double seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}
}  // namespace

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

    // Text comes from the incremental decoder: exactly what decoding prompt + generated ids
    // adds after the prompt, released in whole UTF-8 characters.
    IncrementalDecoder detok(tok, prompt);
    bool stopped = false;  // on_text asked to stop
    t0 = seconds();
    for (int i = 0; i < n_predict; ++i) {
        if (s.n_past(seq) >= s.n_ctx()) break;
        const int32_t next = sampler.sample(logits.data(), n_vocab);
        sampler.accept_generated(next);
        if (tok.is_eog(next)) {
            st.stopped_by_eog = true;
            break;
        }
        ++st.n_generated;
        const std::string piece = detok.push(next);
        if (!piece.empty() && !on_text(piece)) {
            stopped = true;
            break;
        }
        if (i + 1 == n_predict || s.n_past(seq) >= s.n_ctx()) break;
        const int32_t one[1] = {next};
        if (tp) trace = RouterTrace{};
        MOE_TRY(logits, s.eval_tokens(one, false, seq, tp));
        if (tp) on_routing(trace, 1, false);
    }
    st.gen_seconds = seconds() - t0;
    if (const std::string tail = detok.flush(); !stopped && !tail.empty()) on_text(tail);
    return st;
}

}  // namespace moe
