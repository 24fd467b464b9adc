// "Can it run here?": decode tokens/s predicted from this machine's RAM and disk read bandwidth
// and the model's per-token bytes, for a share of the routed experts held in memory, assuming
// uniform routing (every expert equally likely, so a cache holding a share s of them hits with
// probability s). Per token:
//   read from RAM  = non-expert bytes per token + s * k experts' bytes per MoE layer
//   read from disk = (1 - s) * k experts' bytes per MoE layer
//   time           = RAM bytes / RAM bandwidth + disk bytes / disk bandwidth
// `inspect --mem-budget` prints it for the budget and for all, 75%, 50%, 25% of the experts;
// `bench --mem-budget` beside the measured figure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace moe {

struct ModelConfig;

struct DecodeBytes {
    double non_expert_per_token = 0;  // every other tensor once, one token_embd row
    double experts_per_token = 0;     // k of n routed experts in every MoE layer
    uint64_t expert_bytes = 0;        // all routed experts of the model
    uint64_t n_experts = 0;           // (MoE layer, expert) pairs
};

struct DecodePrediction {
    double resident_share = 1;  // of the routed experts
    double ram_bytes = 0, disk_bytes = 0;
    double tokens_per_second = 0;
};

// The routed-expert fields of DecodeBytes for a model with these experts (`expert_bytes`: all of
// them): its (MoE layer, expert) pairs and k of n experts' bytes per token. The caller adds
// non_expert_per_token, which it counts from what it has (a parameter report or a footprint).
DecodeBytes expert_decode_bytes(const ModelConfig& c, uint64_t expert_bytes);

DecodePrediction predict_decode(const DecodeBytes& b, double resident_share, double ram_bw,
                                double disk_bw);

// The share of experts that `budget` bytes hold after `resident` bytes (non-expert weights, KV,
// buffers): whole experts of the average size, at most all; negative when the budget is below
// resident + top-k experts (`k` experts of one layer, the minimum a layer needs).
double budget_expert_share(const DecodeBytes& b, uint64_t budget, uint64_t resident, int k);

// Read bandwidth in bytes/s of `path` from disk: its first `bytes` (at most the file) dropped
// from the page cache (POSIX_FADV_DONTNEED), then read with pread in 2 MiB pieces by `threads`
// threads, as the expert cache reads, and dropped again.
Result<double> measure_disk_read_bandwidth(const std::string& path, uint64_t bytes, int threads);

// The same on a file of `bytes` pseudo-random bytes written (and synced) in `dir`, then removed:
// for a model that does not exist yet (inspect --like).
Result<double> measure_dir_read_bandwidth(const std::string& dir, uint64_t bytes, int threads);

}  // namespace moe
