#include "runtime/bench.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "models/expert_shard.h"
#include "models/expert_store.h"
#include "models/synth.h"
#include "runtime/session.h"

namespace moe {

namespace {

double now() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string file_type_name(const ModelSource& src) {
    const auto id = src.get_int("general.file_type");
    if (!id) return "";
    for (const auto& t : synth_file_types())
        if (int64_t(t.ftype_id) == *id) {
            std::string s = t.name;
            for (auto& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
            return s;
        }
    return "ftype " + std::to_string(*id);
}

struct Stats {
    double mean = 0, sd = 0;
};
Stats stats(const std::vector<double>& v) {
    Stats s;
    if (v.empty()) return s;
    for (double x : v) s.mean += x;
    s.mean /= double(v.size());
    if (v.size() > 1) {
        double ss = 0;
        for (double x : v) ss += (x - s.mean) * (x - s.mean);
        s.sd = std::sqrt(ss / double(v.size() - 1));
    }
    return s;
}

// Cache counters over the timed parts of a test: totals before a part, added after it.
struct CacheMeter {
    const ExpertStore& store;
    ExpertLayerStats sum, at;
    double seconds = 0;
    int64_t tokens = 0;
    void start() { at = store.stats().total(); }
    void stop(double s, int64_t n) {
        const ExpertLayerStats t = store.stats().total();
        sum.hits += t.hits - at.hits, sum.misses += t.misses - at.misses;
        sum.bytes_read += t.bytes_read - at.bytes_read, sum.stall_s += t.stall_s - at.stall_s;
        sum.predicted += t.predicted - at.predicted;
        sum.predicted_used += t.predicted_used - at.predicted_used;
        sum.prefetched += t.prefetched - at.prefetched;
        sum.prefetch_hits += t.prefetch_hits - at.prefetch_hits;
        seconds += s, tokens += n;
    }
    void put(BenchResult& r) const {
        r.cached = store.stats().cached;
        if (!r.cached) return;
        const double acc = double(sum.hits + sum.misses);
        r.hit_pct = acc > 0 ? 100.0 * double(sum.hits) / acc : 0;
        r.mb_per_token = tokens > 0 ? double(sum.bytes_read) / 1e6 / double(tokens) : 0;
        r.stall_pct = seconds > 0 ? 100.0 * sum.stall_s / seconds : 0;
        r.prefetch = store.stats().prefetch;
        r.prediction_pct =
            sum.predicted > 0 ? 100.0 * double(sum.predicted_used) / double(sum.predicted) : 0;
        r.prefetch_hits = sum.prefetch_hits;
        r.accesses = sum.hits + sum.misses;
    }
};

}  // namespace

ModelFootprint model_footprint(const Model& m) {
    ModelFootprint f;
    const ModelSource& src = *m.source;
    f.name = m.config.name.empty() ? m.config.arch : m.config.name;
    if (auto ft = file_type_name(src); !ft.empty()) f.name += " " + ft;
    f.file_bytes = src.file_bytes();
    const auto& moe = m.config.moe;
    const double frac = moe.n_expert > 0 ? double(moe.n_expert_used) / moe.n_expert : 1.0;
    const auto names = src.tensor_names();
    const bool has_output = std::find(names.begin(), names.end(), "output.weight") != names.end();
    for (const auto& name : names) {
        auto t = src.tensor(name);
        if (!t) continue;
        const uint64_t bytes = uint64_t(t->nbytes()), n = uint64_t(t->shape.numel());
        f.tensor_bytes += bytes;
        f.n_params += n;
        if (name.find("_exps") != std::string::npos) {
            f.n_active_params += frac * double(n);
            f.active_bytes_per_token += frac * double(bytes);
        } else if (name == "token_embd.weight" && has_output) {
            f.n_active_params += double(n);
            f.active_bytes_per_token += double(t->row_bytes());
        } else {
            f.n_active_params += double(n);
            f.active_bytes_per_token += double(bytes);
        }
    }
    return f;
}

double decode_kv_bytes(const ModelConfig& c, KvTypes t, int n_past, int n_gen) {
    if (n_gen <= 0) return 0;
    double sum = 0;
    for (int il = 0; il < c.n_layer; ++il) {
        const double row = double(kv_layer_token_bytes(c, il, t));
        const int window = il < int(c.attn.size()) ? c.attn[size_t(il)].sliding_window : 0;
        for (int i = 0; i < n_gen; ++i) {
            const int n_kv = n_past + i + 1;
            sum += row * double(window > 0 ? std::min(n_kv, window) : n_kv);
        }
    }
    return sum / double(n_gen);
}

std::vector<ByteRange> weight_ranges(const Model& m, uint64_t bytes) {
    const ModelSource& src = *m.source;
    // Routed experts are resident only in the plain store: a budgeted cache or a shard of an
    // expert-parallel job leaves (some of) their mapped pages untouched, and reading them
    // would measure the disk.
    const bool experts_resident = m.experts && !m.experts->stats().cached &&
                                  dynamic_cast<const ExpertShard*>(m.experts.get()) == nullptr;
    std::vector<ByteRange> all;
    for (const auto& name : src.tensor_names()) {
        if (name == "token_embd.weight") continue;  // a decode reads one row of it
        if (!experts_resident && name.find("_exps") != std::string::npos) continue;
        auto t = src.tensor(name);
        if (!t || t->empty()) continue;
        all.push_back({static_cast<const uint8_t*>(t->data), uint64_t(t->nbytes())});
    }
    std::sort(all.begin(), all.end(), [](const ByteRange& a, const ByteRange& b) {
        return a.size != b.size ? a.size > b.size : a.data < b.data;
    });
    std::vector<ByteRange> out;
    uint64_t have = 0;
    for (const ByteRange& r : all) {
        if (have >= bytes) break;
        out.push_back({r.data, std::min(r.size, bytes - have)});
        have += out.back().size;
    }
    if (have < bytes) out.clear();
    return out;
}

namespace {

// One piece of the probe: every 64-byte line in order, each line's successor 4 KiB ahead
// prefetched as the decode kernels do (kernels/cpu/zmm_kernels.inc prefetch_ahead).
uint64_t read_piece(const uint8_t* p, uint64_t n) {
    uint64_t s[8] = {};
    uint64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __builtin_prefetch(p + i + 4096);
        uint64_t v[8];
        std::memcpy(v, p + i, 64);
        for (int j = 0; j < 8; ++j) s[j] += v[j];
    }
    for (; i < n; ++i) s[0] += p[i];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, std::span<const ByteRange> ranges, int reps) {
    constexpr uint64_t kPiece = uint64_t(1) << 20;
    std::vector<ByteRange> pieces;
    uint64_t total = 0;
    for (const ByteRange& r : ranges) {
        for (uint64_t o = 0; o < r.size; o += kPiece)
            pieces.push_back({r.data + o, std::min(kPiece, r.size - o)});
        total += r.size;
    }
    if (pieces.empty()) return 0;
    std::vector<uint64_t> sums(pieces.size());
    double best = 1e30;
    for (int r = 0; r < std::max(1, reps); ++r) {
        const double t0 = now();
        pool.parallel_for(int64_t(pieces.size()), [&](int64_t k) {
            sums[size_t(k)] = read_piece(pieces[size_t(k)].data, pieces[size_t(k)].size);
        });
        best = std::min(best, now() - t0);
    }
    volatile uint64_t sink = 0;
    for (auto s : sums) sink = sink + s;
    (void)sink;
    return double(total) / best;
}

double measure_read_bandwidth(ThreadPool& pool, uint64_t bytes, int reps) {
    const uint64_t n = bytes / 65536 * 65536;
    if (n == 0) return 0;
    constexpr uint64_t kHuge = uint64_t(2) << 20;
    const uint64_t len = (n + kHuge - 1) / kHuge * kHuge + kHuge;
    void* raw = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return 0;
    auto* buf =
        reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + kHuge - 1) / kHuge * kHuge);
    ::madvise(buf, n, MADV_HUGEPAGE);  // advice only, as for loaded weights
    // First touch by the pool's threads, in the pieces the probe reads.
    const int64_t n_mib = int64_t((n + (1 << 20) - 1) >> 20);
    pool.parallel_for(n_mib, [&](int64_t k) {
        const uint64_t b = uint64_t(k) << 20, e = std::min(n, b + (uint64_t(1) << 20));
        for (uint64_t i = b; i < e; i += 8) {
            const uint64_t v = i;
            std::memcpy(buf + i, &v, 8);
        }
    });
    const ByteRange r{buf, n};
    const double bw = measure_read_bandwidth(pool, std::span<const ByteRange>(&r, 1), reps);
    ::munmap(raw, len);
    return bw;
}

Result<std::vector<BenchResult>> run_bench(
    const Model& m, const BenchParams& p,
    const std::function<void(const BenchResult&)>& on_result) {
    const ModelFootprint fp = model_footprint(m);
    const int n_vocab = m.config.n_vocab;
    if (n_vocab < 2) return make_error("the model has no vocabulary");
    int max_p = 1, max_g = 0;
    for (int x : p.n_prompt) max_p = std::max(max_p, x);
    for (int x : p.n_gen) max_g = std::max(max_g, x);
    for (int x : p.n_prompt)
        if (x < 0) return make_error("-p {} must be >= 0", x);
    for (int x : p.n_gen)
        if (x < 0) return make_error("-n {} must be >= 0", x);
    if (p.reps < 1) return make_error("-r {} must be >= 1", p.reps);
    const int n_ctx = std::max(max_p, p.tg_prompt + max_g) + 8;
    std::vector<BenchResult> out;
    uint64_t rng = p.seed * 0x9e3779b97f4a7c15ull + 1;
    auto random_tokens = [&](int n) {
        std::vector<int32_t> t(static_cast<size_t>(n));
        for (auto& x : t) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            x = int32_t(1 + rng % uint64_t(n_vocab - 1));
        }
        return t;
    };
    for (int threads : p.threads) {
        if (threads < 0) return make_error("-t {} must be >= 0", threads);
        SessionOptions so;
        so.n_threads = threads;
        so.n_ctx = n_ctx;
        so.n_batch = max_p;
        so.deterministic = p.deterministic;
        so.kv_types = p.kv_types;
        MOE_TRY(const std::unique_ptr<Session> session, Session::create(m, so));
        Session& s = *session;
        const int nt = s.pool().size();
        // Warm-up, as llama-bench does: one pass of the longest prompt pages in the weights and
        // the KV cache (allocated lazily) and sizes the buffers; without it the first
        // repetition ran ~30% slower.
        s.reset(0);
        MOE_TRY(auto w1, s.eval_tokens(random_tokens(max_p), false));
        MOE_TRY(auto w2, s.eval_tokens(random_tokens(1), false));
        // The probe reads the weights themselves where the model has enough of them (their
        // pages, huge or not, are what a decode streams), after the warm-up paged them in.
        const std::vector<ByteRange> ranges = weight_ranges(m, p.bandwidth_bytes);
        auto probe = [&] {
            return ranges.empty() ? measure_read_bandwidth(s.pool(), p.bandwidth_bytes)
                                  : measure_read_bandwidth(s.pool(), ranges);
        };
        const double bw = probe();
        for (int np : p.n_prompt) {
            if (np <= 0) continue;
            BenchResult r;
            r.test = "pp" + std::to_string(np);
            r.n_prompt = np, r.threads = nt, r.reps = p.reps, r.read_bandwidth = bw;
            CacheMeter meter{*m.experts};
            for (int rep = 0; rep < p.reps; ++rep) {
                s.reset(0);
                const auto toks = random_tokens(np);
                meter.start();
                const double t0 = now();
                MOE_TRY(auto lg, s.eval_tokens(toks, false));
                const double dt = now() - t0;
                meter.stop(dt, np);
                r.samples_ts.push_back(np / dt);
            }
            meter.put(r);
            const Stats st = stats(r.samples_ts);
            r.mean_ts = st.mean, r.sd_ts = st.sd;
            if (on_result) on_result(r);
            out.push_back(std::move(r));
        }
        for (int ng : p.n_gen) {
            if (ng <= 0) continue;
            BenchResult r;
            r.test = "tg" + std::to_string(ng);
            r.n_gen = ng, r.threads = nt, r.reps = p.reps;
            const int n_past = std::max(1, p.tg_prompt);
            r.bytes_per_token =
                fp.active_bytes_per_token + decode_kv_bytes(m.config, s.kv_types(), n_past, ng);
            // The host's bandwidth drifts (1.5x between runs on a shared host): probed right
            // before and right after the test, the better of the two is the bound.
            const double bw_before = probe();
            CacheMeter meter{*m.experts};
            for (int rep = 0; rep < p.reps; ++rep) {
                s.reset(0);
                MOE_TRY(auto lp, s.eval_tokens(random_tokens(n_past), false));
                const auto toks = random_tokens(ng);
                meter.start();
                const double t0 = now();
                for (int i = 0; i < ng; ++i) {
                    MOE_TRY(auto lg,
                            s.eval_tokens(std::span<const int32_t>(&toks[size_t(i)], 1), false));
                }
                const double dt = now() - t0;
                meter.stop(dt, ng);
                r.samples_ts.push_back(ng / dt);
            }
            r.read_bandwidth = std::max(bw_before, probe());
            r.bound_ts = r.bytes_per_token > 0 ? r.read_bandwidth / r.bytes_per_token : 0;
            meter.put(r);
            const Stats st = stats(r.samples_ts);
            r.mean_ts = st.mean, r.sd_ts = st.sd;
            if (on_result) on_result(r);
            out.push_back(std::move(r));
        }
    }
    return out;
}

std::string bench_markdown(const ModelFootprint& f, const std::vector<BenchResult>& rs) {
    const bool cached = std::any_of(rs.begin(), rs.end(), [](const auto& r) { return r.cached; });
    std::string s =
        "| model | size | params | active params | threads | test | t/s | bw bound t/s | % of "
        "bound |";
    s += cached ? " cache hit | MB read/token | stall | predicted | prefetch hit |\n" : "\n";
    s += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
    s += cached ? " ---: | ---: | ---: | ---: | ---: |\n" : "\n";
    for (const auto& r : rs) {
        std::string bound = "-", pct = "-";
        if (r.bound_ts > 0) {
            bound = fmt::format("{:.2f}", r.bound_ts);
            pct = fmt::format("{:.0f}%", 100.0 * r.mean_ts / r.bound_ts);
        }
        s += fmt::format(
            "| {} | {:.2f} GiB | {:.2f} B | {:.2f} B | {} | {} | {:.2f} ± {:.2f} | {} | {} |",
            f.name, double(f.tensor_bytes) / double(1ull << 30), double(f.n_params) * 1e-9,
            f.n_active_params * 1e-9, r.threads, r.test, r.mean_ts, r.sd_ts, bound, pct);
        if (cached) {
            s += fmt::format(" {:.1f}% | {:.2f} | {:.1f}% |", r.hit_pct, r.mb_per_token,
                             r.stall_pct);
            // Predicted: share of predicted experts then routed; prefetch hit: share of accesses
            // served by a slot a prediction filled.
            if (r.prefetch)
                s += fmt::format(
                    " {:.1f}% | {:.1f}% |", r.prediction_pct,
                    r.accesses > 0 ? 100.0 * double(r.prefetch_hits) / double(r.accesses) : 0.0);
            else
                s += " off | off |";
        }
        s += "\n";
    }
    // One line per generation test on what its bound stands on.
    for (const auto& r : rs)
        if (r.bound_ts > 0)
            s += fmt::format(
                "\n{} t={}: host read bandwidth {:.2f} GB/s (the weights read as the decode "
                "reads them, best of before and after the test); read per token {:.1f} MiB: "
                "weights {:.1f} MiB (all tensors, top_k/n_expert of routed experts, one "
                "token_embd row) + KV {:.2f} MiB",
                r.test, r.threads, r.read_bandwidth * 1e-9, r.bytes_per_token / double(1 << 20),
                f.active_bytes_per_token / double(1 << 20),
                (r.bytes_per_token - f.active_bytes_per_token) / double(1 << 20));
    for (const auto& r : rs)
        if (r.predicted_ts > 0)
            s += fmt::format(
                "\n{} t={}: measured {:.2f} t/s, predicted {:.2f} t/s ({:.0f}% of it) with {:.1f}% "
                "of the experts in memory, disk {:.2f} GB/s, assuming uniform routing",
                r.test, r.threads, r.mean_ts, r.predicted_ts, 100.0 * r.mean_ts / r.predicted_ts,
                100.0 * r.predicted_share, r.disk_bandwidth * 1e-9);
    s += "\n";
    return s;
}

std::string bench_json(const ModelFootprint& f, const std::vector<BenchResult>& rs) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : rs) {
        nlohmann::json o;
        o["model"] = f.name;
        o["size_bytes"] = f.tensor_bytes;
        o["file_bytes"] = f.file_bytes;
        o["n_params"] = f.n_params;
        o["n_active_params"] = f.n_active_params;
        o["threads"] = r.threads;
        o["test"] = r.test;
        o["n_prompt"] = r.n_prompt;
        o["n_gen"] = r.n_gen;
        o["reps"] = r.reps;
        o["tokens_per_second"] = r.mean_ts;
        o["tokens_per_second_sd"] = r.sd_ts;
        o["samples_ts"] = r.samples_ts;
        o["read_bandwidth_gbs"] = r.read_bandwidth * 1e-9;
        o["active_bytes_per_token"] = f.active_bytes_per_token;
        if (r.bytes_per_token > 0) o["bytes_per_token"] = r.bytes_per_token;
        if (r.bound_ts > 0) {
            o["bound_tokens_per_second"] = r.bound_ts;
            o["percent_of_bound"] = 100.0 * r.mean_ts / r.bound_ts;
        } else {
            o["bound_tokens_per_second"] = nullptr;
            o["percent_of_bound"] = nullptr;
        }
        if (r.cached)
            o["cache"] = {{"hit_percent", r.hit_pct},
                          {"mb_read_per_token", r.mb_per_token},
                          {"stall_percent", r.stall_pct},
                          {"prefetch", r.prefetch},
                          {"prediction_percent", r.prediction_pct},
                          {"prefetch_hits", r.prefetch_hits},
                          {"accesses", r.accesses}};
        if (r.predicted_ts > 0)
            o["prediction"] = {{"assumption", "uniform routing"},
                               {"tokens_per_second", r.predicted_ts},
                               {"resident_share", r.predicted_share},
                               {"disk_bandwidth_gbs", r.disk_bandwidth * 1e-9}};
        arr.push_back(std::move(o));
    }
    return arr.dump(2) + "\n";
}

}  // namespace moe
