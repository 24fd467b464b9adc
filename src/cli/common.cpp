#include "cli/common.h"

#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "cli/expert_parallel_options.h"
#include "core/bundled_file.h"
#include "core/mapped_file.h"
#include "models/expert_cache.h"

namespace moe::cli {

void keep_activation_buffers_in_heap() {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

int report(const std::string& msg) {
    if (job_comm()) {  // an expert-parallel job: this rank's own stderr, then the job ends
        report_and_abort_if_parallel(msg);
        return 1;
    }
    fmt::print(stderr, "error: {}\n", msg);
    return 1;
}

std::string default_model_path(const char* file) {
    namespace fs = std::filesystem;
    if (const char* env = std::getenv("MOEINFER_MODELS")) return (fs::path(env) / file).string();
    return bundled_file("models", file);
}

Result<std::vector<int32_t>> parse_token_list(const std::string& s) {
    std::vector<int32_t> out;
    size_t i = 0;
    while (i <= s.size()) {
        const size_t j = s.find(',', i);
        const std::string item = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
        if (item.empty()) return make_error("empty item in token list '{}'", s);
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(item.c_str(), &end, 10);
        if (*end != '\0' || errno != 0 || v < INT32_MIN || v > INT32_MAX)
            return make_error("'{}' in the token list is not an integer token id", item);
        out.push_back(int32_t(v));
        if (j == std::string::npos) break;
        i = j + 1;
    }
    return out;
}

void add_weight_memory_options(CLI::App* cmd) {
    auto* map = cmd->add_flag_callback(
        "--mmap", [] { set_weight_memory(WeightMemory::Map); },
        "map the weights file (zero copy, lazy; for models near or above RAM)");
    auto* load = cmd->add_flag_callback(
        "--no-mmap", [] { set_weight_memory(WeightMemory::Load); },
        "read the weights into huge-page memory (faster decode; needs RAM for the whole file)");
    map->excludes(load);
}

namespace {
// An expert cache reads experts itself: the file is mapped and not read in at load.
void map_without_reading_in() {
    set_weight_memory(WeightMemory::Map);
    set_populate_mappings(false);
}
}  // namespace

void add_mem_budget_options(CLI::App* cmd, MemBudgetArgs& a) {
    auto* b = cmd->add_option_function<double>(
                     "--mem-budget",
                     [&a](double g) {
                         a.gib = g;
                         map_without_reading_in();
                     },
                     "memory for the whole process, GiB: experts beyond it are read from the "
                     "file into a cache of that size")
                  ->check(finite_in(0.001, 1 << 20));
    cmd->add_option("--cache-policy", a.policy,
                    "expert cache eviction: lfru (default; hit rate equal to lru or up to 1.1 "
                    "points higher on the demo's trained routing at 25-50% of the experts, "
                    "docs/memory-budget.md) or lru")
        ->check(CLI::IsMember({"lru", "lfru"}));
    cmd->add_option(
           "--prefetch", a.prefetch,
           "expert cache: predict layer l+1's experts from layer l's output and read "
           "them ahead: on or off (default: on the OLMoE file it read up to 2.4x the bytes "
           "and decoded no faster, docs/memory-budget.md)")
        ->check(CLI::IsMember({"on", "off"}));
    cmd->add_option("--io-threads", a.io_threads, "expert cache reader threads (default 4)")
        ->check(CLI::Range(1, 16));
    auto* sl = cmd->add_option_function<int64_t>(
                      "--cache-slots",
                      [&a](int64_t n) {
                          a.slots = n;
                          map_without_reading_in();
                      },
                      "expert cache of exactly N slots (one expert of one layer each), instead "
                      "of sizing it from --mem-budget")
                   ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
    sl->excludes(b);
    if (auto* nm = cmd->get_option_no_throw("--no-mmap")) b->excludes(nm), sl->excludes(nm);
}

Result<BudgetPlan> apply_mem_budget(Model& m, const MemBudgetArgs& a, int n_ctx, int n_seq,
                                    KvTypes kv) {
    if (a.gib <= 0 && a.slots <= 0) return BudgetPlan{};
    ExpertBudget b;
    b.budget_gib = a.gib;
    b.n_ctx = n_ctx, b.n_seq = n_seq;
    b.kv_types = kv;
    MOE_TRY(b.policy, parse_cache_policy(a.policy));
    b.io_threads = a.io_threads;
    b.prefetch = a.prefetch == "on";
    b.slots = uint64_t(a.slots);
    std::string note;
    MOE_TRY(const BudgetPlan plan, attach_expert_cache(m, b, note));
    fmt::print(stderr, "{}\n", note);
    return plan;
}

void add_kv_cache_options(CLI::App* cmd, KvTypes& t) {
    const auto add = [cmd](const char* name, DType& slot, const char* what) {
        cmd->add_option_function<std::string>(
               name, [&slot](const std::string& v) { slot = *dtype_from_name(v); },
               fmt::format("KV cache type of {} rows: f32 (default), f16, bf16, q8_0", what))
            ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}, CLI::ignore_case));
    };
    add("--cache-type-k", t.k, "key (MLA: the latent and rotated key)");
    add("--cache-type-v", t.v, "value (MLA has none)");
}

void add_sampling_options(CLI::App* cmd, SamplerParams& sp) {
    cmd->add_option("--seed", sp.seed, "random seed");
    cmd->add_option("--temp", sp.temp, "temperature (0 = greedy)");
    cmd->add_option("--top-k", sp.top_k, "top-k (0 = off)");
    cmd->add_option("--top-p", sp.top_p, "top-p (1 = off)");
    cmd->add_option("--min-p", sp.min_p, "min-p (0 = off)");
    cmd->add_option("--repeat-penalty", sp.repeat_penalty, "repetition penalty (1 = off)");
    cmd->add_option("--repeat-last-n", sp.repeat_last_n, "tokens the penalty looks back at");
    cmd->add_option("--presence-penalty", sp.presence_penalty,
                    "subtracted from tokens already generated (0 = off)");
    cmd->add_option("--frequency-penalty", sp.frequency_penalty,
                    "subtracted per time a token was generated (0 = off)");
}

CLI::Validator finite_in(double lo, double hi) {
    return CLI::Validator(
        [lo, hi](std::string& s) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(s.c_str(), &end);
            if (s.empty() || *end != '\0' || !std::isfinite(v) || v < lo || v > hi)
                return fmt::format("'{}' is not a finite number in [{}, {}]", s, lo, hi);
            return {};
        },
        fmt::format("FLOAT in [{} - {}]", lo, hi));
}

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace moe::cli
