// Throughput benchmark in the manner of the upstream llama-bench: "pp<N>" evaluates N random
// tokens in one batch on a fresh KV cache; "tg<N>" generates N tokens one at a time after a
// short prompt. Each test runs `reps` times after a warm-up; the mean and standard deviation of
// tokens/s are reported. For generation, the memory-bandwidth bound is reported too: the host's
// read bandwidth (every thread of the session's pool reading the model's own weight memory as the
// decode matvecs do, measured right before and right after each generation test: the better of
// the two) divided by the bytes one token must read (weights, see ModelFootprint, plus the KV
// rows its attention reads, see decode_kv_bytes).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/thread_pool.h"
#include "models/kv_layout.h"
#include "models/model.h"

namespace moe {

// What one token costs in weights. Convention: every tensor is read in full once per token,
// except routed experts (tensors named *_exps, weights and biases), of which top_k / n_expert is
// read, and token_embd, of which one row is read (unless it doubles as the output head). The KV
// cache is counted apart (decode_kv_bytes); activations are not counted. Parameters count the
// same way except that token_embd counts in full (the vendors' "active parameters" convention).
struct ModelFootprint {
    std::string name;  // "OLMoE-1B-7B (synthetic) Q4_K_M"
    uint64_t file_bytes = 0;
    uint64_t tensor_bytes = 0;  // sum of tensor data
    uint64_t n_params = 0;
    double n_active_params = 0;
    double active_bytes_per_token = 0;
};
ModelFootprint model_footprint(const Model& m);

// KV bytes the attention reads per generated token, averaged over `n_gen` tokens generated after
// `n_past` cached positions: token i sees n_past + i + 1 positions, of which a sliding-window
// layer reads at most its window; each position costs kv_layer_token_bytes in its layer.
double decode_kv_bytes(const ModelConfig& c, KvTypes t, int n_past, int n_gen);

// One piece of memory the probe reads.
struct ByteRange {
    const uint8_t* data = nullptr;
    uint64_t size = 0;
};
// The model's weight memory a decode reads, largest tensors first, up to `bytes`: every tensor
// but token_embd, and the routed experts only where they are all resident (not under
// --mem-budget or --expert-parallel, whose expert pages are never touched). Empty when the
// model has less than `bytes` there (the probe then reads a buffer of its own).
std::vector<ByteRange> weight_ranges(const Model& m, uint64_t bytes);

// Best-of-`reps` bandwidth in bytes/s of reading `ranges` the way the decode matvecs read
// weights: 1 MiB pieces handed out to every thread of the pool in turn, 64-byte lines in order,
// each piece prefetched 4 KiB ahead (the hardware prefetcher stops at 4 KiB pages).
double measure_read_bandwidth(ThreadPool& pool, std::span<const ByteRange> ranges, int reps = 3);
// The same over a buffer of `bytes` (rounded down to 64 KiB multiples) of its own, in 2 MiB
// aligned memory advised to huge pages as loaded weights are (core/mapped_file).
double measure_read_bandwidth(ThreadPool& pool, uint64_t bytes, int reps = 3);

struct BenchParams {
    std::vector<int> n_prompt{512};  // pp tests (0s are skipped)
    std::vector<int> n_gen{128};     // tg tests (0s are skipped)
    std::vector<int> threads{0};     // 0: hardware concurrency
    int reps = 5;
    int tg_prompt = 8;  // untimed prompt before each generation run
    uint64_t bandwidth_bytes = uint64_t(1) << 30;
    uint64_t seed = 1;
    bool deterministic = false;  // SessionOptions::deterministic (batch-invariant kernels)
    KvTypes kv_types;            // SessionOptions::kv_types
};

struct BenchResult {
    std::string test;  // "pp512", "tg128"
    int n_prompt = 0, n_gen = 0, threads = 0, reps = 0;
    std::vector<double> samples_ts;
    double mean_ts = 0, sd_ts = 0;
    double read_bandwidth = 0;   // bytes/s, for the same thread count (tg: its own probes)
    double bytes_per_token = 0;  // tg only: active_bytes_per_token + decode_kv_bytes
    double bound_ts = 0;         // tg only: read_bandwidth / bytes_per_token
    // Expert cache (--mem-budget) over the timed runs; cached = false with the resident store.
    bool cached = false;
    double hit_pct = 0, mb_per_token = 0, stall_pct = 0;
    bool prefetch = false;
    double prediction_pct = 0;  // predicted experts that were then routed
    uint64_t prefetch_hits = 0, accesses = 0;
    // tg with a budget: decode tok/s runtime/decode_prediction.h predicts (0: none)
    double predicted_ts = 0, predicted_share = 0, disk_bandwidth = 0;
};

Result<std::vector<BenchResult>> run_bench(
    const Model& m, const BenchParams& p,
    const std::function<void(const BenchResult&)>& on_result = {});

std::string bench_markdown(const ModelFootprint& f, const std::vector<BenchResult>& r);
std::string bench_json(const ModelFootprint& f, const std::vector<BenchResult>& r);

}  // namespace moe
