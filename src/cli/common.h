// Helpers shared by the subcommands: error reporting, the bundled default model, token lists.
#pragma once

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "models/expert_cache.h"
#include "models/kv_layout.h"
#include "models/model.h"
#include "runtime/sampler.h"

namespace moe::cli {

// Prints "error: <msg>" to stderr and returns exit code 1.
int report(const std::string& msg);

// The bundled demo model (models/demo-moe.gguf next to the binary's source tree or the CWD).
std::string default_model_path(const char* file = "demo-moe.gguf");

// "1,2,3" -> {1, 2, 3}; rejects empty items and non-numbers.
Result<std::vector<int32_t>> parse_token_list(const std::string& s);

// --seed, --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n.
void add_sampling_options(CLI::App* cmd, SamplerParams& sp);

// --mmap / --no-mmap: how weight files are held in memory (core/mapped_file.h; default: load
// into huge pages when the file fits in half of the available memory, else map).
void add_weight_memory_options(CLI::App* cmd);

// --mem-budget GiB / --cache-policy lru|lfru / --io-threads N: run with a budgeted expert cache
// (models/expert_cache.h). Giving --mem-budget maps the file without reading it in.
struct MemBudgetArgs {
    double gib = 0;  // 0: no budget
    std::string policy = "lfru";
    int io_threads = 4;
    int64_t slots = 0;             // --cache-slots
    std::string prefetch = "off";  // --prefetch: speculative prefetch (docs/memory-budget.md)
};
void add_mem_budget_options(CLI::App* cmd, MemBudgetArgs& a);
// After load_model: applies the budget (if any) for a context of n_ctx tokens x n_seq; prints
// the one-line note (cache size, or resident mode) on stderr.
// Returns the plan (slots 0 without a budget).
Result<BudgetPlan> apply_mem_budget(Model& m, const MemBudgetArgs& a, int n_ctx, int n_seq = 1,
                                    KvTypes kv = {});
// --cache-type-k / --cache-type-v: the types the KV cache stores rows in (f32, f16, bf16, q8_0;
// default f32). Whether the model's widths allow them is the session's check.
void add_kv_cache_options(CLI::App* cmd, KvTypes& t);

// A CLI11 check that a number is finite and in [lo, hi] (CLI::Range lets NaN through).
CLI::Validator finite_in(double lo, double hi);
// Context lengths: a non-negative token count up to 2^24 (the memory check is the session's).
inline const CLI::Range kContextRange(0, 1 << 24);

// Process-wide allocator tuning for inference, done once at the CLI edge (main): a forward pass
// allocates its per-layer activations (MBs for prompts) and frees them again; glibc serves blocks
// over its mmap threshold with fresh mappings, so every layer paid page faults and zeroing of new
// pages (measured: pp128 on OLMoE shapes 50 -> 78 t/s once they are reused). This keeps such
// blocks in the heap and does not trim it back after each pass.
void keep_activation_buffers_in_heap();

// Seconds since an arbitrary epoch (monotonic).
double now_seconds();

}  // namespace moe::cli
