// A load generator for OpenAI-compatible servers (ours, llama-server, vLLM): streaming
// /v1/completions requests with unique prompts, a sweep over concurrency levels, and per level
// throughput and latency percentiles. When the server is ours (its /metrics has the moeinfer_
// scheduler counters), each level also reports the experts a decode step touched and the weight
// bytes read per generated token, from the counters' change over the level.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace moe {

// Where the server is: "http://HOST:PORT" with an optional path prefix ("http://h:8000/v1" and
// "http://h:8000" both reach http://h:8000/v1/completions).
struct ServerUrl {
    std::string host;
    int port = 80;
    std::string prefix;  // "" or "/something", never ending in '/'
};
Result<ServerUrl> parse_server_url(const std::string& url);

struct ServeBenchOptions {
    ServerUrl url;
    std::string model;    // the request's "model" field ("" leaves it out)
    std::string api_key;  // "Authorization: Bearer KEY" when not empty
    int prompt_words = 48;
    int max_tokens = 64;
    std::vector<int> concurrency = {1, 2, 4, 8, 16};
    int requests = 0;               // per level; 0: requests_per_client x concurrency
    int requests_per_client = 3;    // used when requests == 0
    uint64_t seed = 1;              // prompt words
    double temperature = 0;         // 0: greedy
    bool request_routing = false;   // ask for per-token `moe_routing` (our server's extension)
    bool request_logprobs = false;  // ask for the chosen tokens' logprobs (`logprobs: 0`)
    double connect_timeout_s = 5;   // an unreachable server is an error, not a hang
    double read_timeout_s = 300;    // longest silence within one response
    // Called after each request ends (from the client threads, serialized).
    std::function<void(int level, int done, int total)> progress;
};

// One request as the client saw it.
struct RequestRecord {
    bool ok = false;
    std::string error;             // why it failed (HTTP status and message, connection error)
    std::string prompt;            // the prompt sent
    std::string text;              // the streamed completion text
    double ttft_s = 0;             // send -> first chunk with text
    double total_s = 0;            // send -> end of stream
    std::vector<double> itl_s;     // gaps between consecutive chunks with text
    int chunks = 0;                // chunks that carried text
    int usage_tokens = -1;         // usage.completion_tokens of the last chunk; -1 when absent
    int prompt_tokens = -1;        // usage.prompt_tokens; -1 when absent
    std::vector<double> logprobs;  // chosen tokens' logprobs (request_logprobs)
    // Per generated token (where the server sends `moe_routing`): [moe layer] -> expert ids.
    std::vector<std::vector<std::vector<int32_t>>> routing;
};

// The moeinfer_ counters of one model, as /metrics shows them.
struct ScrapedCounters {
    double decode_steps = 0, decode_tokens = 0, generated_tokens = 0;
    double experts_per_layer_mean = 0;  // over decode steps so far
    double weight_bytes_per_token_mean = 0, expert_bytes_per_token_mean = 0;
};

struct LevelResult {
    int concurrency = 0;
    int requests = 0, failures = 0;
    double wall_s = 0;
    int64_t output_tokens = 0;  // sum of usage.completion_tokens (chunks where usage is absent)
    int64_t streamed_chunks = 0;
    int usage_missing = 0;     // successful requests without usage
    int count_mismatches = 0;  // requests that streamed more text chunks than usage counted
    double output_tok_s = 0, req_s = 0;
    double ttft_p50_s = 0, ttft_p99_s = 0, itl_p50_s = 0, itl_p99_s = 0;
    double max_total_s = 0;  // the slowest request (TTFT of every request is below it)
    std::string first_error;
    // Our server only (deltas of its counters over the level):
    std::optional<double> experts_per_layer;       // distinct experts per MoE layer per step
    std::optional<double> decode_batch;            // generated tokens per decode step
    std::optional<double> weight_bytes_per_token;  // experts + dense, per generated token
    std::optional<double> expert_bytes_per_token;
    std::optional<double> server_generated_tokens;
    std::vector<RequestRecord> records;
};

struct ServeBenchResult {
    std::vector<LevelResult> levels;
    bool server_is_moeinfer = false;
};

// Unique prompts of `words` common English words each (deterministic in seed and index).
std::string bench_prompt(uint64_t seed, int index, int words);

// p in [0, 1], nearest-rank on a copy; 0 for an empty list.
double percentile(std::vector<double> v, double p);

// Parses the moeinfer_ samples of `model` (or the first model when no sample has that label)
// from Prometheus text; nullopt when the text has none (another server).
std::optional<ScrapedCounters> parse_server_counters(const std::string& text,
                                                     const std::string& model);

// Checks that the server answers (connect timeout), then runs every level in turn.
Result<ServeBenchResult> run_serve_bench(const ServeBenchOptions& opt);

// One level of `n` requests at concurrency `c`, prompts starting at `first_prompt`.
Result<LevelResult> run_serve_level(const ServeBenchOptions& opt, int c, int n, int first_prompt,
                                    int level_index);

}  // namespace moe
