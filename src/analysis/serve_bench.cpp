// The load generator of analysis/serve_bench.h: one HTTP client per concurrent request stream,
// server-sent events parsed as they arrive so TTFT and inter-token gaps are the client's view.
#include "analysis/serve_bench.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

namespace moe {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Common English words; prompts draw from them so that every tokenizer sees ordinary text
// (about one token per word with its leading space).
constexpr const char* kWords[] = {
    "time",   "person",  "year",   "way",     "day",    "thing",   "man",     "world",   "life",
    "hand",   "part",    "child",  "eye",     "woman",  "place",   "work",    "week",    "case",
    "point",  "number",  "group",  "problem", "fact",   "good",    "new",     "first",   "last",
    "long",   "great",   "little", "own",     "other",  "old",     "right",   "big",     "high",
    "small",  "large",   "next",   "early",   "young",  "few",     "public",  "bad",     "same",
    "able",   "be",      "have",   "do",      "say",    "get",     "make",    "go",      "know",
    "take",   "see",     "come",   "think",   "look",   "want",    "give",    "use",     "find",
    "tell",   "ask",     "seem",   "feel",    "try",    "leave",   "call",    "house",   "water",
    "room",   "mother",  "area",   "money",   "story",  "month",   "lot",     "book",    "job",
    "word",   "issue",   "side",   "kind",    "head",   "service", "friend",  "father",  "power",
    "hour",   "game",    "line",   "end",     "member", "law",     "car",     "city",    "name",
    "team",   "minute",  "idea",   "kid",     "body",   "back",    "parent",  "face",    "others",
    "level",  "office",  "door",   "health",  "art",    "war",     "history", "party",   "result",
    "change", "morning", "reason", "girl",    "guy",    "moment",  "air",     "teacher", "force",
    "river",  "music",   "tree",   "road",    "window", "garden",  "letter",  "market",  "stone",
    "light",  "night",   "summer", "winter",  "table",  "paper",   "bread",   "horse",   "field",
    "school", "street",  "color",  "land",    "sea",    "bird",    "dog",     "fire",    "plant",
    "rain",   "wind",    "snow",   "sun",     "moon",   "star",    "hill",    "lake",    "ship",
    "train",  "north",   "south",  "green",   "blue",   "red",     "white",   "black",   "open",
    "close",  "slow",    "fast",   "warm",    "cold",   "happy",   "quiet",   "simple",  "strong",
    "clear",  "full",    "free",   "real",    "late",   "hard",    "easy",    "near",    "far",
};
constexpr int kNumWords = int(sizeof(kWords) / sizeof(kWords[0]));

// One server-sent event's data, as the stream of one request delivers it.
struct StreamParser {
    std::string buf;
    bool done = false;
    std::function<bool(const json&)> on_chunk;  // false: stop reading

    bool feed(const char* data, size_t n) {
        buf.append(data, n);
        size_t start = 0;
        for (;;) {
            const size_t nl = buf.find('\n', start);
            if (nl == std::string::npos) break;
            std::string line = buf.substr(start, nl - start);
            start = nl + 1;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.rfind("data:", 0) != 0) continue;  // comments, blank lines, event names
            std::string payload = line.substr(5);
            if (!payload.empty() && payload[0] == ' ') payload.erase(0, 1);
            if (payload == "[DONE]") {
                done = true;
                continue;
            }
            json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
            if (j.is_discarded()) continue;
            if (!on_chunk(j)) return false;
        }
        buf.erase(0, start);
        return true;
    }
};

// [moe layer] -> expert ids of one token, from {"<layer>": [[expert, weight], ...]}.
std::vector<std::vector<int32_t>> token_routing(const json& r) {
    std::vector<std::vector<int32_t>> out;
    if (!r.is_object()) return out;
    for (const auto& [layer, experts] : r.items()) {
        char* end = nullptr;
        const long l = std::strtol(layer.c_str(), &end, 10);
        if (end == layer.c_str() || l < 0 || l > 4096 || !experts.is_array()) continue;
        if (out.size() <= size_t(l)) out.resize(size_t(l) + 1);
        for (const auto& e : experts)
            if (e.is_array() && !e.empty() && e[0].is_number_integer())
                out[size_t(l)].push_back(e[0].get<int32_t>());
        std::sort(out[size_t(l)].begin(), out[size_t(l)].end());
    }
    return out;
}

// The per-token routing of one chunk: an object for one token or an array of them, at the
// chunk's top level or in its choice.
void append_routing(const json& chunk, RequestRecord& rec) {
    const json* r = nullptr;
    if (chunk.contains("moe_routing")) r = &chunk["moe_routing"];
    if (const auto c = chunk.find("choices");
        !r && c != chunk.end() && c->is_array() && !c->empty() && (*c)[0].contains("moe_routing"))
        r = &(*c)[0]["moe_routing"];
    if (!r) return;
    // Each entry: {"token": id, "layers": {"<layer>": [[expert, weight], ...]}} (our server), or
    // the layer object itself.
    auto layers = [](const nlohmann::json& t) -> const nlohmann::json& {
        return t.is_object() && t.contains("layers") ? t["layers"] : t;
    };
    if (r->is_array())
        for (const auto& t : *r) rec.routing.push_back(token_routing(layers(t)));
    else if (r->is_object())
        rec.routing.push_back(token_routing(layers(*r)));
}

std::string error_message(int status, const std::string& body) {
    json j = json::parse(body, nullptr, false);
    std::string msg = body.substr(0, 200);
    if (!j.is_discarded() && j.is_object() && j.contains("error")) {
        const json& e = j["error"];
        if (e.is_object() && e.contains("message") && e["message"].is_string())
            msg = e["message"].get<std::string>();
        else if (e.is_string())
            msg = e.get<std::string>();
    }
    return fmt::format("HTTP {}: {}", status, msg);
}

httplib::Client make_client(const ServeBenchOptions& opt) {
    httplib::Client c(opt.url.host, opt.url.port);
    const auto us = [](double s) { return std::chrono::microseconds(int64_t(s * 1e6)); };
    c.set_connection_timeout(us(opt.connect_timeout_s));
    c.set_read_timeout(us(opt.read_timeout_s));
    c.set_write_timeout(us(opt.read_timeout_s));
    // A fresh connection per request: servers differ in when they close a kept-alive one after
    // a stream, and a request sent on a closed socket would count as a failure.
    c.set_keep_alive(false);
    return c;
}

httplib::Headers auth_headers(const ServeBenchOptions& opt) {
    httplib::Headers h;
    if (!opt.api_key.empty()) h.emplace("Authorization", "Bearer " + opt.api_key);
    return h;
}

RequestRecord one_request(httplib::Client& cli, const ServeBenchOptions& opt,
                          const std::string& prompt) {
    RequestRecord rec;
    rec.prompt = prompt;
    json body = {{"prompt", prompt},
                 {"max_tokens", opt.max_tokens},
                 {"temperature", opt.temperature},
                 {"stream", true},
                 {"stream_options", {{"include_usage", true}}},
                 {"ignore_eos", true}};
    if (!opt.model.empty()) body["model"] = opt.model;
    if (opt.request_routing) body["moe_routing"] = true;
    if (opt.request_logprobs) body["logprobs"] = 0;

    httplib::Request req;
    req.method = "POST";
    req.path = opt.url.prefix + "/v1/completions";
    req.headers = auth_headers(opt);
    req.headers.emplace("Content-Type", "application/json");
    req.headers.emplace("Accept", "text/event-stream");
    req.body = body.dump();

    std::string raw;  // the body as received, for error messages
    int status = 0;
    Clock::time_point last_text;
    std::string chunk_error;
    StreamParser parser;
    const Clock::time_point t0 = Clock::now();
    parser.on_chunk = [&](const json& j) {
        if (!j.is_object()) return true;
        if (j.contains("error")) {
            chunk_error = error_message(200, j.dump());
            return false;
        }
        const auto ch = j.find("choices");
        if (ch != j.end() && ch->is_array() && !ch->empty() && (*ch)[0].is_object()) {
            const json& c0 = (*ch)[0];
            const auto t = c0.find("text");
            if (t != c0.end() && t->is_string() && !t->get_ref<const std::string&>().empty()) {
                const auto now = Clock::now();
                if (rec.chunks == 0)
                    rec.ttft_s = std::chrono::duration<double>(now - t0).count();
                else
                    rec.itl_s.push_back(std::chrono::duration<double>(now - last_text).count());
                last_text = now;
                ++rec.chunks;
                rec.text += t->get<std::string>();
            }
            const auto lp = c0.find("logprobs");
            if (lp != c0.end() && lp->is_object() && lp->contains("token_logprobs") &&
                (*lp)["token_logprobs"].is_array())
                for (const auto& v : (*lp)["token_logprobs"])
                    if (v.is_number()) rec.logprobs.push_back(v.get<double>());
        }
        append_routing(j, rec);
        const auto u = j.find("usage");
        if (u != j.end() && u->is_object()) {
            if (u->contains("completion_tokens") && (*u)["completion_tokens"].is_number_integer())
                rec.usage_tokens = (*u)["completion_tokens"].get<int>();
            if (u->contains("prompt_tokens") && (*u)["prompt_tokens"].is_number_integer())
                rec.prompt_tokens = (*u)["prompt_tokens"].get<int>();
        }
        return true;
    };
    req.response_handler = [&](const httplib::Response& r) {
        status = r.status;
        return true;
    };
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
        if (status != 200) {
            if (raw.size() < 4096) raw.append(d, std::min<size_t>(n, 4096));
            return true;
        }
        return parser.feed(d, n);
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    const bool sent = cli.send(req, res, err);
    rec.total_s = since(t0);
    if (!chunk_error.empty()) {
        rec.error = chunk_error;
    } else if (!sent && status == 0) {
        rec.error =
            fmt::format("{} http://{}:{}: {}",
                        err == httplib::Error::Connection ? "cannot reach" : "no response from",
                        opt.url.host, opt.url.port, httplib::to_string(err));
    } else if (status != 200) {
        rec.error = error_message(status, raw);
    } else if (!sent) {
        rec.error = fmt::format("the stream broke off: {}", httplib::to_string(err));
    } else if (!parser.done) {
        rec.error = "the stream ended without data: [DONE]";
    } else if (rec.chunks == 0) {
        rec.error = "the stream carried no text";
    } else {
        rec.ok = true;
    }
    return rec;
}

std::optional<ScrapedCounters> scrape(const ServeBenchOptions& opt) {
    httplib::Client c = make_client(opt);
    c.set_read_timeout(std::chrono::seconds(10));
    auto r = c.Get(opt.url.prefix + "/metrics", auth_headers(opt));
    if (!r || r->status != 200) return std::nullopt;
    return parse_server_counters(r->body, opt.model);
}

void fill_stats(LevelResult& L) {
    std::vector<double> ttft, itl;
    for (const auto& r : L.records) {
        L.max_total_s = std::max(L.max_total_s, r.total_s);
        if (!r.ok) {
            ++L.failures;
            if (L.first_error.empty()) L.first_error = r.error;
            continue;
        }
        ttft.push_back(r.ttft_s);
        itl.insert(itl.end(), r.itl_s.begin(), r.itl_s.end());
        L.streamed_chunks += r.chunks;
        if (r.usage_tokens < 0) {
            ++L.usage_missing;
            L.output_tokens += r.chunks;
        } else {
            L.output_tokens += r.usage_tokens;
            if (r.chunks > r.usage_tokens) ++L.count_mismatches;
        }
    }
    L.output_tok_s = L.wall_s > 0 ? double(L.output_tokens) / L.wall_s : 0;
    L.req_s = L.wall_s > 0 ? double(L.requests - L.failures) / L.wall_s : 0;
    L.ttft_p50_s = percentile(ttft, 0.50);
    L.ttft_p99_s = percentile(ttft, 0.99);
    L.itl_p50_s = percentile(itl, 0.50);
    L.itl_p99_s = percentile(itl, 0.99);
}

void fill_server_deltas(LevelResult& L, const ScrapedCounters& a, const ScrapedCounters& b) {
    const double steps = b.decode_steps - a.decode_steps;
    const double toks = b.decode_tokens - a.decode_tokens;
    L.server_generated_tokens = b.generated_tokens - a.generated_tokens;
    if (steps <= 0 || toks <= 0) return;
    L.decode_batch = toks / steps;
    // The counters are means over all steps so far; the level's share is the change of the sums.
    L.experts_per_layer =
        (b.experts_per_layer_mean * b.decode_steps - a.experts_per_layer_mean * a.decode_steps) /
        steps;
    L.weight_bytes_per_token = (b.weight_bytes_per_token_mean * b.decode_tokens -
                                a.weight_bytes_per_token_mean * a.decode_tokens) /
                               toks;
    L.expert_bytes_per_token = (b.expert_bytes_per_token_mean * b.decode_tokens -
                                a.expert_bytes_per_token_mean * a.decode_tokens) /
                               toks;
}

}  // namespace

Result<ServerUrl> parse_server_url(const std::string& url) {
    std::string rest = url;
    if (rest.rfind("http://", 0) == 0)
        rest = rest.substr(7);
    else if (rest.find("://") != std::string::npos)
        return make_error("--url '{}': only http:// URLs are supported", url);
    ServerUrl u;
    const size_t slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    u.prefix = slash == std::string::npos ? "" : rest.substr(slash);
    while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
    if (u.prefix.size() >= 3 && u.prefix.compare(u.prefix.size() - 3, 3, "/v1") == 0)
        u.prefix.resize(u.prefix.size() - 3);
    const size_t colon = hostport.rfind(':');
    if (colon != std::string::npos) {
        const std::string p = hostport.substr(colon + 1);
        char* end = nullptr;
        const long port = std::strtol(p.c_str(), &end, 10);
        if (p.empty() || *end != '\0' || port < 1 || port > 65535)
            return make_error("--url '{}': port '{}' is not a number in 1..65535", url, p);
        u.port = int(port);
        hostport.resize(colon);
    }
    if (hostport.empty()) return make_error("--url '{}': no host", url);
    u.host = hostport;
    return u;
}

std::string bench_prompt(uint64_t seed, int index, int words) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + uint64_t(index) + 1);
    std::string s;
    for (int i = 0; i < words; ++i) {
        if (i) s += ' ';
        s += kWords[rng() % uint64_t(kNumWords)];
    }
    return s;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const double rank = std::ceil(p * double(v.size()));
    const size_t i = size_t(std::clamp(rank, 1.0, double(v.size()))) - 1;
    return v[i];
}

std::optional<ScrapedCounters> parse_server_counters(const std::string& text,
                                                     const std::string& model) {
    // moeinfer_NAME{model="M"} VALUE
    struct Sample {
        std::string name, model;
        double value;
    };
    std::vector<Sample> samples;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        const std::string line = text.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.rfind("moeinfer_", 0) != 0) continue;
        const size_t brace = line.find("{model=\"");
        if (brace == std::string::npos) continue;
        const size_t q = line.find("\"}", brace + 8);
        if (q == std::string::npos) continue;
        char* end = nullptr;
        const std::string v = line.substr(q + 2);
        const double x = std::strtod(v.c_str(), &end);
        if (end == v.c_str()) continue;
        samples.push_back({line.substr(9, brace - 9), line.substr(brace + 8, q - brace - 8), x});
    }
    if (samples.empty()) return std::nullopt;
    std::string pick = samples[0].model;
    for (const auto& s : samples)
        if (s.model == model) pick = model;
    ScrapedCounters c;
    const std::pair<const char*, double*> fields[] = {
        {"decode_steps_total", &c.decode_steps},
        {"decode_tokens_total", &c.decode_tokens},
        {"generated_tokens_total", &c.generated_tokens},
        {"decode_experts_per_layer_mean", &c.experts_per_layer_mean},
        {"decode_weight_bytes_per_token_mean", &c.weight_bytes_per_token_mean},
        {"decode_expert_bytes_per_token_mean", &c.expert_bytes_per_token_mean},
    };
    int found = 0;
    for (const auto& s : samples) {
        if (s.model != pick) continue;
        for (const auto& [name, dst] : fields)
            if (s.name == name) *dst = s.value, ++found;
    }
    if (found < int(std::size(fields))) return std::nullopt;
    return c;
}

Result<LevelResult> run_serve_level(const ServeBenchOptions& opt, int c, int n, int first_prompt,
                                    int level_index) {
    LevelResult L;
    L.concurrency = c;
    L.requests = n;
    L.records.resize(size_t(n));
    const auto before = scrape(opt);
    std::atomic<int> next{0};
    std::mutex progress_mu;
    int done = 0;
    const Clock::time_point t0 = Clock::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < std::min(c, n); ++i)
        clients.emplace_back([&] {
            httplib::Client cli = make_client(opt);
            for (int k; (k = next.fetch_add(1)) < n;) {
                L.records[size_t(k)] = one_request(
                    cli, opt, bench_prompt(opt.seed, first_prompt + k, opt.prompt_words));
                std::lock_guard lk(progress_mu);
                ++done;
                if (opt.progress) opt.progress(level_index, done, n);
            }
        });
    for (auto& t : clients) t.join();
    L.wall_s = since(t0);
    fill_stats(L);
    if (before)
        if (const auto after = scrape(opt)) fill_server_deltas(L, *before, *after);
    return L;
}

Result<ServeBenchResult> run_serve_bench(const ServeBenchOptions& opt) {
    if (opt.concurrency.empty()) return make_error("no concurrency levels");
    for (int c : opt.concurrency)
        if (c < 1 || c > 4096) return make_error("concurrency {} is not in 1..4096", c);
    if (opt.prompt_words < 1) return make_error("--prompt-tokens must be >= 1");
    if (opt.max_tokens < 1) return make_error("--max-tokens must be >= 1");
    // Reachability first: an unreachable server is one clear error, not N failed requests.
    {
        httplib::Client c = make_client(opt);
        c.set_read_timeout(std::chrono::seconds(int64_t(opt.connect_timeout_s) + 5));
        auto r = c.Get(opt.url.prefix + "/v1/models", auth_headers(opt));
        if (!r)
            return make_error("cannot reach http://{}:{}{}: {}", opt.url.host, opt.url.port,
                              opt.url.prefix, httplib::to_string(r.error()));
        if (r->status == 401 || r->status == 403)
            return make_error("http://{}:{}{}: {} (check --api-key)", opt.url.host, opt.url.port,
                              opt.url.prefix, error_message(r->status, r->body));
    }
    ServeBenchResult out;
    out.server_is_moeinfer = scrape(opt).has_value();
    int first_prompt = 0;
    for (size_t i = 0; i < opt.concurrency.size(); ++i) {
        const int c = opt.concurrency[i];
        const int n = opt.requests > 0 ? opt.requests : opt.requests_per_client * c;
        MOE_TRY(auto level, run_serve_level(opt, c, n, first_prompt, int(i)));
        first_prompt += n;  // unique prompts across levels too: no prompt-cache hits
        out.levels.push_back(std::move(level));
    }
    return out;
}

}  // namespace moe
