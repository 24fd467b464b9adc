// Formatting of serve_bench results (serve_bench_report.h).
#include "analysis/serve_bench_report.h"

#include <fmt/format.h>

namespace moe {
namespace {

std::string ms(double s) {
    return s >= 10 ? fmt::format("{:.2f} s", s) : fmt::format("{:.1f} ms", s * 1e3);
}

template <class T>
nlohmann::ordered_json opt_json(const std::optional<T>& v) {
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

}  // namespace

std::string serve_bench_table(const ServeBenchResult& r) {
    std::string out =
        "| concurrency | requests | failed | output tok/s | req/s | TTFT p50 | TTFT p99 | ITL p50 "
        "| ITL p99 |";
    if (r.server_is_moeinfer) out += " experts/layer/step | weight MB/token |";
    out += "\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
    if (r.server_is_moeinfer) out += " ---: | ---: |";
    out += "\n";
    for (const auto& L : r.levels) {
        out += fmt::format("| {} | {} | {} | {:.2f} | {:.3f} | {} | {} | {} | {} |", L.concurrency,
                           L.requests, L.failures, L.output_tok_s, L.req_s, ms(L.ttft_p50_s),
                           ms(L.ttft_p99_s), ms(L.itl_p50_s), ms(L.itl_p99_s));
        if (r.server_is_moeinfer)
            out += fmt::format(
                " {} | {} |",
                L.experts_per_layer ? fmt::format("{:.2f}", *L.experts_per_layer) : "-",
                L.weight_bytes_per_token ? fmt::format("{:.2f}", *L.weight_bytes_per_token / 1e6)
                                         : "-");
        out += "\n";
    }
    return out;
}

nlohmann::ordered_json serve_bench_json(const ServeBenchResult& r, const ServeBenchOptions& opt) {
    using json = nlohmann::ordered_json;
    json levels = json::array();
    for (const auto& L : r.levels) {
        json requests = json::array();
        for (const auto& q : L.records)
            requests.push_back({{"ok", q.ok},
                                {"error", q.error},
                                {"ttft_s", q.ttft_s},
                                {"total_s", q.total_s},
                                {"chunks", q.chunks},
                                {"usage_completion_tokens", q.usage_tokens},
                                {"usage_prompt_tokens", q.prompt_tokens}});
        levels.push_back({{"concurrency", L.concurrency},
                          {"requests", L.requests},
                          {"failures", L.failures},
                          {"first_error", L.first_error},
                          {"wall_s", L.wall_s},
                          {"output_tokens", L.output_tokens},
                          {"streamed_chunks", L.streamed_chunks},
                          {"usage_missing", L.usage_missing},
                          {"count_mismatches", L.count_mismatches},
                          {"output_tok_s", L.output_tok_s},
                          {"req_s", L.req_s},
                          {"ttft_p50_s", L.ttft_p50_s},
                          {"ttft_p99_s", L.ttft_p99_s},
                          {"itl_p50_s", L.itl_p50_s},
                          {"itl_p99_s", L.itl_p99_s},
                          {"max_request_s", L.max_total_s},
                          {"experts_per_layer_per_step", opt_json(L.experts_per_layer)},
                          {"decode_batch", opt_json(L.decode_batch)},
                          {"weight_bytes_per_token", opt_json(L.weight_bytes_per_token)},
                          {"expert_bytes_per_token", opt_json(L.expert_bytes_per_token)},
                          {"server_generated_tokens", opt_json(L.server_generated_tokens)},
                          {"per_request", std::move(requests)}});
    }
    return {{"url", fmt::format("http://{}:{}{}", opt.url.host, opt.url.port, opt.url.prefix)},
            {"model", opt.model},
            {"prompt_words", opt.prompt_words},
            {"max_tokens", opt.max_tokens},
            {"seed", opt.seed},
            {"server_is_moeinfer", r.server_is_moeinfer},
            {"levels", std::move(levels)}};
}

}  // namespace moe
