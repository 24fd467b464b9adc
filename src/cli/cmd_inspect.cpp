// `moeinfer inspect MODEL` / `moeinfer inspect --like PRESET`: architecture, total and active
// parameters per token by role (both embedding conventions), storage by tensor type, and whether
// weights + KV cache fit in this machine's RAM or a given amount of VRAM. `--json` prints one
// object with `total_params` and `active_params` (external checks read these names).
// `--mem-budget GiB` adds the predicted decode speed with a budgeted expert cache
// (runtime/decode_prediction.h) from this machine's measured RAM and disk read bandwidth.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "analysis/params.h"
#include "analysis/provenance.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/sysinfo.h"
#include "formats/metadata_source.h"
#include "models/expert_cache.h"
#include "models/model.h"
#include "models/presets.h"
#include "models/synth.h"
#include "parallel/placement.h"
#include "runtime/bench.h"
#include "runtime/decode_prediction.h"

namespace moe::cli {
namespace {

struct InspectArgs {
    std::string model, like, type;
    int64_t n_ctx = 4096;
    double vram_gib = -1;
    bool json = false, tensors = false;
    int ranks = 0;                     // --ranks: expert-parallel prediction per rank
    KvTypes kv;                        // --cache-type-k / --cache-type-v
    double budget_gib = 0;             // --mem-budget: predict decode speed with this budget
    double ram_gbs = 0, disk_gbs = 0;  // > 0: use instead of measuring
    int threads = 0, bw_mib = 512;
    std::string disk_probe = ".";  // --like: where the disk read bandwidth is measured
};

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string human(int64_t n) {
    const double v = double(n);
    if (std::abs(v) >= 1e9) return fmt::format("{:.2f}B", v / 1e9);
    if (std::abs(v) >= 1e6) return fmt::format("{:.1f}M", v / 1e6);
    if (std::abs(v) >= 1e3) return fmt::format("{:.1f}K", v / 1e3);
    return fmt::format("{}", n);
}

std::string gib(uint64_t b) {
    const double v = double(b);
    if (v >= 0.1 * kGiB) return fmt::format("{:.2f} GiB", v / kGiB);
    if (v >= 1024.0 * 1024.0) return fmt::format("{:.2f} MiB", v / (1024.0 * 1024.0));
    return fmt::format("{:.1f} KiB", v / 1024.0);
}

std::string pct_diff(double ours, double published) {
    return published > 0 ? fmt::format("{:+.1f}%", (ours / published - 1.0) * 100.0) : "n/a";
}

struct Inspected {
    std::unique_ptr<Model> model;
    ParamReport params;
    std::string source, format, storage;
    uint64_t file_bytes = 0;
    const Preset* preset = nullptr;
    std::optional<Provenance> provenance;  // files only
};

Result<Inspected> inspect_file(const std::string& path) {
    MOE_TRY(auto src, open_model_source(path));
    Inspected r;
    // The config from metadata alone, so that inspecting does not depend on tensor types the
    // kernels support; fall back to the full source when metadata lacks e.g. the vocab size.
    auto meta = std::make_shared<MetadataSource>(src->path(), src->metadata());
    auto planned = plan_model(meta);
    if (!planned.ok()) planned = plan_model(src);
    if (!planned.ok()) return planned.error();
    r.model = std::move(*planned);
    r.params = count_source_params(*src, r.model->config);
    if (r.params.tensors.empty()) return make_error("{}: no tensors", path);
    r.source = src->path();
    r.format = src->format();
    r.file_bytes = src->file_bytes();
    r.storage = "as stored";
    r.provenance = read_provenance(*src);
    return r;
}

Result<Inspected> inspect_preset(const std::string& name, const std::string& type) {
    const Preset* p = find_preset(name);
    if (!p) return make_error("unknown preset '{}' (known: {})", name, preset_names());
    Inspected r;
    r.preset = p;
    MOE_TRY(r.model, plan_model(preset_source(*p)));
    StoragePolicy policy = published_storage(p->arch);
    r.storage = "published";
    if (const SynthFileType* ft = type.empty() ? nullptr : find_synth_file_type(type)) {
        // A file type (synth's and the upstream quantizer's names): its per-tensor mix, so the
        // bytes are those of the file `synth --like P --type T` writes.
        MOE_TRY(auto tensors, synth_tensors(*p, *ft));
        policy = StoragePolicy{ft->base, std::nullopt, {}};
        for (const SynthTensor& t : tensors) policy.per_tensor[t.name] = t.dtype;
        r.storage = ft->name;
    } else if (!type.empty() && type != "published") {
        auto t = dtype_from_name(type);
        if (!t)
            return make_error(
                "unknown type '{}': a file type ({}) or a tensor type (bf16, f16, "
                "q8_0, q4_K, ...)",
                type, synth_file_type_names());
        policy = StoragePolicy{*t, std::nullopt, {}};
        r.storage = std::string(dtype_name(*t));
    } else {
        r.storage = fmt::format(
            "published: {}{}", dtype_name(policy.matrix_type),
            policy.expert_type ? fmt::format(", routed experts {}", dtype_name(*policy.expert_type))
                               : std::string());
    }
    MOE_TRY(r.params, count_planned_params(*r.model, p->tied_embeddings, policy));
    r.source = "preset:" + p->name;
    r.format = "preset";
    return r;
}

// The KV cache at the context with K and V both in each type (what --cache-type-k/v save).
struct KvOption {
    DType type = DType::F32;
    bool allowed = false;
    std::string why_not;
    uint64_t per_token = 0, bytes = 0;
};
std::vector<KvOption> kv_options(const ModelConfig& c, int64_t n_ctx) {
    std::vector<KvOption> out;
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0}) {
        KvOption o;
        o.type = t;
        const KvTypes both{t, t};
        if (auto ok = check_kv_types(c, both); !ok) {
            o.why_not = ok.message();
        } else {
            o.allowed = true;
            o.per_token = kv_bytes_per_token(c, both);
            o.bytes = kv_cache_bytes(c, n_ctx, both);
        }
        out.push_back(std::move(o));
    }
    return out;
}

struct Fit {
    bool fits = false;
    double margin = 0;  // bytes left (negative: short by)
};

nlohmann::json fit_json(const Fit& f, uint64_t capacity) {
    return {{"fits", f.fits}, {"capacity_bytes", capacity}, {"margin_bytes", f.margin}};
}

// Weights + KV cache at the requested context against this machine's RAM and --vram.
struct Memory {
    uint64_t kv_tok = 0, kv = 0, resident = 0, vram_bytes = 0;
    std::optional<MemInfo> mem;
    Fit ram_total, ram_avail, vram;
};

Memory estimate_memory(const InspectArgs& a, const Inspected& in) {
    Memory m;
    const ModelConfig& c = in.model->config;
    m.kv_tok = kv_bytes_per_token(c, a.kv);
    m.kv = kv_cache_bytes(c, a.n_ctx, a.kv);
    m.resident = in.params.weight_bytes + m.kv;
    m.mem = read_meminfo();
    if (m.mem) {
        m.ram_total = {m.resident <= m.mem->total, double(m.mem->total) - double(m.resident)};
        m.ram_avail = {m.resident <= m.mem->available,
                       double(m.mem->available) - double(m.resident)};
    }
    m.vram_bytes = a.vram_gib > 0 ? uint64_t(a.vram_gib * kGiB) : 0;
    if (a.vram_gib > 0)
        m.vram = {m.resident <= m.vram_bytes, double(m.vram_bytes) - double(m.resident)};
    return m;
}

// decode tok/s for --mem-budget: the budget's share of experts and 100/75/50/25% of them.
struct BudgetRow {
    std::string label;
    double share = 0;
    DecodePrediction p;
};
struct BudgetReport {
    bool on = false;
    double ram_bw = 0, disk_bw = 0;  // bytes/s
    std::string ram_how, disk_how;   // "measured ..." / "given"
    DecodeBytes bytes;
    uint64_t resident = 0, budget = 0, min_budget = 0;
    bool below_min = false;
    std::vector<BudgetRow> rows;
};

// Per-token bytes from the counted tensors: routed experts k of n per MoE layer, token_embd one
// row (unless it is also the output head), every other tensor whole.
DecodeBytes decode_bytes(const Inspected& in) {
    const ModelConfig& c = in.model->config;
    const ParamReport& pr = in.params;
    DecodeBytes b = expert_decode_bytes(c, pr.role(ParamRole::RoutedExperts).bytes);
    for (const auto& t : pr.tensors) {
        if (t.role == ParamRole::RoutedExperts) continue;
        if (t.role == ParamRole::Embedding && !pr.tied_embeddings && t.shape.rows() > 0)
            b.non_expert_per_token += double(t.bytes) / double(t.shape.rows());
        else
            b.non_expert_per_token += double(t.bytes);
    }
    return b;
}

Result<BudgetReport> budget_report(const InspectArgs& a, const Inspected& in) {
    BudgetReport r;
    if (a.budget_gib <= 0) return r;
    r.on = true;
    const ModelConfig& c = in.model->config;
    if (c.n_moe_layers() == 0) return make_error("--mem-budget: the model has no MoE layers");
    r.bytes = decode_bytes(in);
    if (a.ram_gbs > 0) {
        r.ram_bw = a.ram_gbs * 1e9, r.ram_how = "given (--ram-bw)";
    } else {
        MOE_TRY(auto pool, ThreadPool::create(a.threads));
        r.ram_bw = measure_read_bandwidth(*pool, uint64_t(a.bw_mib) << 20);
        r.ram_how = fmt::format("measured, {} threads, {} MiB buffer", pool->size(), a.bw_mib);
    }
    if (a.disk_gbs > 0) {
        r.disk_bw = a.disk_gbs * 1e9, r.disk_how = "given (--disk-bw)";
    } else if (in.format == "preset") {
        MOE_TRY(r.disk_bw, measure_dir_read_bandwidth(a.disk_probe, uint64_t(256) << 20, 4));
        r.disk_how =
            fmt::format("measured, 256 MiB probe file in '{}', cache dropped", a.disk_probe);
    } else {
        MOE_TRY(r.disk_bw, measure_disk_read_bandwidth(in.source, uint64_t(256) << 20, 4));
        r.disk_how = "measured, first 256 MiB of the file, cache dropped";
    }
    const int k = c.moe.n_expert_used;
    r.budget = uint64_t(a.budget_gib * kGiB);
    r.resident =
        budget_fixed_part(c, in.params.weight_bytes - r.bytes.expert_bytes, int(a.n_ctx), 1, a.kv)
            .total();
    const double per = double(r.bytes.expert_bytes) / double(r.bytes.n_experts);
    r.min_budget = r.resident + uint64_t(double(k) * per);
    const double share = budget_expert_share(r.bytes, r.budget, r.resident, k);
    r.below_min = share < 0;
    if (!r.below_min)
        r.rows.push_back({fmt::format("--mem-budget {:g} GiB", a.budget_gib), share,
                          predict_decode(r.bytes, share, r.ram_bw, r.disk_bw)});
    for (const double s : {1.0, 0.75, 0.5, 0.25})
        r.rows.push_back({fmt::format("{:.0f}% of experts", 100 * s), s,
                          predict_decode(r.bytes, s, r.ram_bw, r.disk_bw)});
    return r;
}

nlohmann::json budget_json(const BudgetReport& r) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& row : r.rows)
        rows.push_back({{"label", row.label},
                        {"resident_share", row.share},
                        {"ram_bytes_per_token", row.p.ram_bytes},
                        {"disk_bytes_per_token", row.p.disk_bytes},
                        {"tokens_per_second", row.p.tokens_per_second},
                        {"budget_bytes", r.resident + uint64_t(row.share * r.bytes.expert_bytes)}});
    return {{"assumption", "uniform routing"},
            {"budget_bytes", r.budget},
            {"resident_bytes", r.resident},
            {"min_budget_bytes", r.min_budget},
            {"below_minimum", r.below_min},
            {"ram_bandwidth_gbs", r.ram_bw * 1e-9},
            {"ram_bandwidth", r.ram_how},
            {"disk_bandwidth_gbs", r.disk_bw * 1e-9},
            {"disk_bandwidth", r.disk_how},
            {"non_expert_bytes_per_token", r.bytes.non_expert_per_token},
            {"expert_bytes_per_token", r.bytes.experts_per_token},
            {"rows", rows}};
}

void print_budget(const BudgetReport& r) {
    fmt::print("\ndecode speed with a budgeted expert cache, assuming uniform routing\n");
    fmt::print("  RAM read bandwidth  {:.2f} GB/s ({})\n", r.ram_bw * 1e-9, r.ram_how);
    fmt::print("  disk read bandwidth {:.2f} GB/s ({})\n", r.disk_bw * 1e-9, r.disk_how);
    fmt::print(
        "  per token: {:.1f} MiB of non-expert weights + {:.1f} MiB of routed experts; "
        "resident part {} (non-expert weights, KV, buffers)\n",
        r.bytes.non_expert_per_token / double(1 << 20), r.bytes.experts_per_token / double(1 << 20),
        gib(r.resident));
    if (r.below_min)
        fmt::print(
            "  --mem-budget {} is below the minimum of {} (resident part + one layer's "
            "top-k experts)\n",
            gib(r.budget), gib(r.min_budget));
    fmt::print("  {:<22} {:>10} {:>10} {:>14} {:>15} {:>10}\n", "", "experts in", "memory",
               "RAM MiB/token", "disk MiB/token", "tok/s");
    for (const auto& row : r.rows)
        fmt::print("  {:<22} {:>9.1f}% {:>10} {:>14.1f} {:>15.1f} {:>10.2f}\n", row.label,
                   100 * row.share, gib(r.resident + uint64_t(row.share * r.bytes.expert_bytes)),
                   row.p.ram_bytes / double(1 << 20), row.p.disk_bytes / double(1 << 20),
                   row.p.tokens_per_second);
}

// --ranks N: what each rank of `mpirun -np N ... --expert-parallel` (contiguous placement) holds:
// every non-expert weight, the KV cache, and its experts of each MoE layer.
struct RankMemory {
    int experts_per_layer = 0;
    uint64_t experts = 0, resident = 0;
};
Result<std::vector<RankMemory>> rank_memory(const InspectArgs& a, const Inspected& in,
                                            const Memory& mm) {
    const ModelConfig& c = in.model->config;
    MOE_TRY(const ExpertPlacement p,
            place_experts(c.is_moe, c.moe.n_expert, a.ranks, Placement::Contiguous));
    const uint64_t routed = in.params.roles[size_t(ParamRole::RoutedExperts)].bytes;
    const uint64_t non_expert = in.params.weight_bytes - routed;
    std::vector<RankMemory> out;
    const int first_moe = int(std::find(c.is_moe.begin(), c.is_moe.end(), 1) - c.is_moe.begin());
    for (int r = 0; r < a.ranks; ++r) {
        RankMemory m;
        m.experts_per_layer = p.owned(r, first_moe);
        m.experts = routed / uint64_t(c.moe.n_expert) * uint64_t(m.experts_per_layer);
        m.resident = non_expert + mm.kv + m.experts;
        out.push_back(m);
    }
    return out;
}

void print_json(const InspectArgs& a, const Inspected& in, const Memory& mm,
                const std::vector<RankMemory>& ranks, const BudgetReport& budget) {
    const ModelConfig& c = in.model->config;
    const ParamReport& pr = in.params;
    const int n_moe = c.n_moe_layers(), n_dense = c.n_layer - n_moe;
    const uint64_t kv_tok = mm.kv_tok, kv = mm.kv, resident = mm.resident;
    const auto& mem = mm.mem;
    const auto &ram_total = mm.ram_total, &ram_avail = mm.ram_avail, &vram = mm.vram;
    const uint64_t vram_bytes = mm.vram_bytes;
    nlohmann::json j;
    j["source"] = in.source;
    j["format"] = in.format;
    j["name"] = c.name;
    j["architecture"] = c.arch;
    j["family"] = c.family;
    j["n_layer"] = c.n_layer;
    j["n_moe_layers"] = n_moe;
    j["n_dense_layers"] = n_dense;
    j["n_embd"] = c.n_embd;
    j["n_vocab"] = c.n_vocab;
    j["n_expert"] = c.moe.n_expert;
    j["n_expert_used"] = c.moe.n_expert_used;
    j["n_ff_exp"] = c.moe.n_ff_exp;
    j["n_ff_shexp"] = c.moe.n_ff_shexp;
    j["n_ff"] = c.n_ff;
    j["total_params"] = pr.total;
    j["active_params"] = pr.active();
    j["active_params_incl_embd"] = pr.active_incl_embd;
    j["active_params_excl_embd"] = pr.active_excl_embd;
    j["headline_convention"] = pr.headline_includes_embd ? "incl_embd" : "excl_embd";
    j["tied_embeddings"] = pr.tied_embeddings;
    nlohmann::json br = nlohmann::json::object();
    for (int i = 0; i < kParamRoles; ++i) {
        const auto& rc = pr.roles[size_t(i)];
        br[std::string(role_key(ParamRole(i)))] = {
            {"total", rc.total}, {"active", rc.active}, {"bytes", rc.bytes}};
    }
    j["breakdown"] = br;
    nlohmann::json types = nlohmann::json::array();
    for (const auto& t : pr.types)
        types.push_back({{"type", std::string(dtype_name(t.dtype))},
                         {"tensors", t.n_tensors},
                         {"params", t.numel},
                         {"bytes", t.bytes},
                         {"bits_per_weight", t.bits_per_weight()}});
    j["types"] = types;
    j["storage"] = in.storage;
    j["weight_bytes"] = pr.weight_bytes;
    j["bits_per_weight"] = pr.bits_per_weight();
    if (in.format != "preset") j["file_bytes"] = in.file_bytes;
    nlohmann::json m;
    m["n_ctx"] = a.n_ctx;
    m["kv_bytes_per_token"] = kv_tok;
    m["kv_bytes"] = kv;
    m["kv_type_k"] = std::string(dtype_name(a.kv.k));
    m["kv_type_v"] = std::string(dtype_name(c.use_mla ? a.kv.k : a.kv.v));
    nlohmann::json by_type = nlohmann::json::object();
    for (const KvOption& o : kv_options(c, a.n_ctx))
        by_type[std::string(dtype_name(o.type))] =
            o.allowed ? nlohmann::json{{"bytes_per_token", o.per_token}, {"bytes", o.bytes}}
                      : nlohmann::json{{"unavailable", o.why_not}};
    m["kv_by_type"] = by_type;
    m["weights_bytes"] = pr.weight_bytes;
    m["resident_bytes"] = resident;
    if (mem) {
        m["ram_total"] = fit_json(ram_total, mem->total);
        m["ram_available"] = fit_json(ram_avail, mem->available);
    }
    if (a.vram_gib > 0) m["vram"] = fit_json(vram, vram_bytes);
    if (!ranks.empty()) {
        auto& rk = m["ranks"] = nlohmann::json::array();
        for (const RankMemory& r : ranks)
            rk.push_back({{"experts_per_layer", r.experts_per_layer},
                          {"expert_bytes", r.experts},
                          {"resident_bytes", r.resident}});
    }
    j["memory"] = m;
    if (in.preset) {
        j["preset"] = in.preset->name;
        j["hf_repo"] = in.preset->hf_repo;
        j["published_total_b"] = in.preset->published_total_b;
        j["published_active_b"] = in.preset->published_active_b;
    }
    if (a.tensors) {
        nlohmann::json ts = nlohmann::json::array();
        for (const auto& t : pr.tensors)
            ts.push_back({{"name", t.name},
                          {"shape", t.shape.str()},
                          {"type", std::string(dtype_name(t.dtype))},
                          {"params", t.numel},
                          {"bytes", t.bytes},
                          {"role", std::string(role_key(t.role))}});
        j["tensors"] = ts;
    }
    if (in.provenance) j["provenance"] = provenance_json(*in.provenance);
    if (budget.on) j["mem_budget"] = budget_json(budget);
    fmt::print("{}\n", j.dump(2));
}

void print_architecture(const Inspected& in) {
    const ModelConfig& c = in.model->config;
    const int n_moe = c.n_moe_layers(), n_dense = c.n_layer - n_moe;
    fmt::print("model          {}{}\n", c.name.empty() ? in.source : c.name,
               in.preset ? fmt::format("  [preset {}, {}]", in.preset->name, in.preset->hf_repo)
                         : fmt::format("  [{}]", in.source));
    fmt::print("architecture   {} (family {}){}\n", c.arch, c.family,
               c.use_mla
                   ? fmt::format(", MLA kv_lora {} + rope {}", c.mla.kv_lora_rank, c.mla.qk_rope)
                   : std::string());
    fmt::print("layers         {} ({} MoE, {} dense)\n", c.n_layer, n_moe, n_dense);
    if (c.moe.n_expert > 0) {
        fmt::print("experts        {} routed, top-{}, expert FFN {}\n", c.moe.n_expert,
                   c.moe.n_expert_used, c.moe.n_ff_exp);
        if (c.moe.n_ff_shexp > 0) {
            const bool whole = c.moe.n_ff_exp > 0 && c.moe.n_ff_shexp % c.moe.n_ff_exp == 0;
            fmt::print("shared experts FFN {}{}\n", c.moe.n_ff_shexp,
                       whole
                           ? fmt::format(" (= {} x expert FFN)", c.moe.n_ff_shexp / c.moe.n_ff_exp)
                           : std::string());
        } else {
            fmt::print("shared experts none\n");
        }
    } else {
        fmt::print("experts        none (dense model)\n");
    }
    if (n_dense > 0 && c.n_ff > 0) fmt::print("dense FFN      {}\n", c.n_ff);
    fmt::print("embedding      {}, vocab {}, training context {}\n", c.n_embd, c.n_vocab,
               c.n_ctx_train);
}

void print_params(const Inspected& in) {
    const ModelConfig& c = in.model->config;
    const ParamReport& pr = in.params;
    const std::string headline = pr.headline_includes_embd
                                     ? "embedding table counted as active"
                                     : "embedding lookup not counted as active";
    // Two active columns, one per embedding convention; '*' marks the headline.
    const char* mark_in = pr.headline_includes_embd ? "*" : " ";
    const char* mark_ex = pr.headline_includes_embd ? " " : "*";
    fmt::print("\n{:<22} {:>10} {:>14}{} {:>14}{}\n", "parameters", "total", "active w/ embd",
               mark_in, "active w/o embd", mark_ex);
    for (int i = 0; i < kParamRoles; ++i) {
        const auto& rc = pr.roles[size_t(i)];
        if (rc.total == 0) continue;
        std::string note;
        int64_t excl = rc.active;
        if (ParamRole(i) == ParamRole::Embedding) {
            note = pr.tied_embeddings ? "  (tied: also the output head)" : "  (a lookup)";
            if (!pr.tied_embeddings) excl = 0;
        }
        if (ParamRole(i) == ParamRole::RoutedExperts && c.moe.n_expert > 0)
            note = fmt::format("  ({} of {} per MoE layer)", c.moe.n_expert_used, c.moe.n_expert);
        fmt::print("  {:<20} {:>10} {:>14}  {:>15}{}\n", role_name(ParamRole(i)), human(rc.total),
                   human(rc.active), human(excl), note);
    }
    fmt::print("  {:<20} {:>10} {:>14}  {:>15}\n", "total", human(pr.total),
               human(pr.active_incl_embd), human(pr.active_excl_embd));
    fmt::print("active per token: {} with the embedding table, {} without it\n",
               human(pr.active_incl_embd), human(pr.active_excl_embd));
    fmt::print("headline: {} total, {} active ({}, the publisher's convention for {})\n",
               human(pr.total), human(pr.active()), headline, c.arch);
    if (in.preset && in.preset->published_total_b > 0) {
        const double pt = in.preset->published_total_b * 1e9,
                     pa = in.preset->published_active_b * 1e9;
        fmt::print(
            "published: {:g}B total / {:g}B active; ours {} / {} (incl. embd {}, excl. "
            "{})\n",
            in.preset->published_total_b, in.preset->published_active_b,
            pct_diff(double(pr.total), pt), pct_diff(double(pr.active()), pa),
            pct_diff(double(pr.active_incl_embd), pa), pct_diff(double(pr.active_excl_embd), pa));
    }
}

void print_storage(const Inspected& in) {
    const ParamReport& pr = in.params;
    fmt::print("\nstorage ({})\n", in.storage);
    fmt::print("  {:<8} {:>8} {:>10} {:>12} {:>12}\n", "type", "tensors", "params", "size",
               "bits/weight");
    for (const auto& t : pr.types)
        fmt::print("  {:<8} {:>8} {:>10} {:>12} {:>12.3f}\n", dtype_name(t.dtype), t.n_tensors,
                   human(t.numel), gib(t.bytes), t.bits_per_weight());
    fmt::print("  {:<8} {:>8} {:>10} {:>12} {:>12.3f}\n", "all", pr.tensors.size(), human(pr.total),
               gib(pr.weight_bytes), pr.bits_per_weight());
    if (in.format != "preset")
        fmt::print("  on disk: {} ({} bytes)\n", gib(in.file_bytes), in.file_bytes);
}

void print_memory(const InspectArgs& a, const Inspected& in, const Memory& mm) {
    const ParamReport& pr = in.params;
    const uint64_t kv_tok = mm.kv_tok, kv = mm.kv, resident = mm.resident;
    const auto& mem = mm.mem;
    const auto &ram_total = mm.ram_total, &ram_avail = mm.ram_avail, &vram = mm.vram;
    fmt::print("\nresident memory at -c {} (one sequence)\n", a.n_ctx);
    fmt::print("  weights     {}\n", gib(pr.weight_bytes));
    const ModelConfig& c = in.model->config;
    const std::string types =
        c.use_mla ? fmt::format("MLA rows {}", dtype_name(a.kv.k))
                  : fmt::format("K {}, V {}", dtype_name(a.kv.k), dtype_name(a.kv.v));
    fmt::print("  KV cache    {}  ({}, {:.1f} KiB per token)\n", gib(kv), types,
               double(kv_tok) / 1024.0);
    std::string by_type;
    for (const KvOption& o : kv_options(c, a.n_ctx))
        by_type += o.allowed ? fmt::format("  {} {}", dtype_name(o.type), gib(o.bytes))
                             : fmt::format("  {} n/a", dtype_name(o.type));
    fmt::print("  KV by type (K and V both, --cache-type-k/v):{}\n", by_type);
    fmt::print("  total       {}  (activation buffers not counted)\n", gib(resident));
    if (mem) {
        fmt::print(
            "  this machine's RAM: {} total, {} available -> {} (margin {:+.2f} GiB of "
            "total, {:+.2f} GiB of available)\n",
            gib(mem->total), gib(mem->available),
            ram_avail.fits   ? "fits"
            : ram_total.fits ? "fits in total RAM but not in what is available now"
                             : "does NOT fit",
            ram_total.margin / kGiB, ram_avail.margin / kGiB);
    } else {
        fmt::print("  this machine's RAM: unknown (cannot read /proc/meminfo)\n");
    }
    if (a.vram_gib > 0)
        fmt::print("  --vram {:g} GiB -> {} (margin {:+.2f} GiB)\n", a.vram_gib,
                   vram.fits ? "fits" : "does NOT fit", vram.margin / kGiB);
}

void print_provenance(const Inspected& in) {
    if (!in.provenance) return;
    fmt::print("\nlicence and provenance (from the file's metadata)\n");
    for (const auto& line : provenance_lines(*in.provenance)) fmt::print("{}\n", line);
}

void print_tensors(const Inspected& in) {
    const ParamReport& pr = in.params;
    fmt::print("\n{:<40} {:<22} {:<8} {:>10} {}\n", "tensor", "shape", "type", "params", "role");
    for (const auto& t : pr.tensors)
        fmt::print("{:<40} {:<22} {:<8} {:>10} {}\n", t.name, t.shape.str(), dtype_name(t.dtype),
                   t.numel, role_name(t.role));
}

int run_inspect(const InspectArgs& a) {
    if (a.model.empty() == a.like.empty())
        return report("give either a MODEL (GGUF file or HF folder) or --like PRESET");
    if (!a.type.empty() && a.like.empty())
        return report("--type applies to --like presets; a file's types are read from it");
    if (a.n_ctx < 0) return report("-c must be >= 0");
    auto res = a.like.empty() ? inspect_file(a.model) : inspect_preset(a.like, a.type);
    if (!res) return report(res.message());
    const Inspected& in = *res;
    if (auto k = check_kv_types(in.model->config, a.kv); !k) return report(k.message());
    const Memory mem = estimate_memory(a, in);
    std::vector<RankMemory> ranks;
    if (a.ranks > 0) {
        auto r = rank_memory(a, in, mem);
        if (!r) return report(r.message());
        ranks = std::move(*r);
    }
    auto br = budget_report(a, in);
    if (!br) return report(br.message());
    if (a.json) {
        print_json(a, in, mem, ranks, *br);
        return 0;
    }
    print_architecture(in);
    print_params(in);
    print_storage(in);
    print_memory(a, in, mem);
    if (!ranks.empty()) {
        const uint64_t routed = in.params.roles[size_t(ParamRole::RoutedExperts)].bytes;
        fmt::print(
            "\nexpert parallel over {} ranks (--expert-parallel, contiguous), per rank: "
            "non-expert weights {} + KV {} + its experts\n",
            a.ranks, gib(in.params.weight_bytes - routed), gib(mem.kv));
        for (size_t r = 0; r < ranks.size(); ++r)
            fmt::print("  rank {}: {} experts per MoE layer ({}) -> resident {}\n", r,
                       ranks[r].experts_per_layer, gib(ranks[r].experts), gib(ranks[r].resident));
    }
    if (br->on) print_budget(*br);
    print_provenance(in);
    if (a.tensors) print_tensors(in);
    return 0;
}

}  // namespace

void register_inspect_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<InspectArgs>();
    auto* cmd = app.add_subcommand(
        "inspect", "parameters (total / active per token by role), storage and memory of a model");
    cmd->add_option("model", a->model, "GGUF file or Hugging Face folder");
    cmd->add_option("--like", a->like, "a preset instead of a file: " + preset_names());
    cmd->add_option("--type", a->type,
                    "with --like: a file type as synth writes it (q4_k_m, q8_0, mxfp4_moe, ...) or "
                    "one tensor type for every matrix (bf16, f16, q4_K, ...); default: the "
                    "published checkpoint's");
    cmd->add_option("-c,--ctx", a->n_ctx, "context length for the KV-cache estimate (default 4096)")
        ->check(kContextRange);
    cmd->add_option("--vram", a->vram_gib, "also say whether it fits in this many GiB")
        ->check(finite_in(0, 1 << 20));
    add_kv_cache_options(cmd, a->kv);
    cmd->add_option("--mem-budget", a->budget_gib,
                    "predict decode tok/s with an expert cache of this many GiB for the whole "
                    "process (and with 100/75/50/25% of the experts), assuming uniform routing")
        ->check(finite_in(0.001, 1 << 20));
    cmd->add_option("--ram-bw", a->ram_gbs, "with --mem-budget: RAM read GB/s instead of measuring")
        ->check(finite_in(0.001, 1e6));
    cmd->add_option("--disk-bw", a->disk_gbs,
                    "with --mem-budget: disk read GB/s instead of measuring")
        ->check(finite_in(0.001, 1e6));
    cmd->add_option("--disk-probe", a->disk_probe,
                    "with --like --mem-budget: folder whose disk is measured (default .)");
    cmd->add_option("-t,--threads", a->threads,
                    "threads for the RAM bandwidth measurement (default: all cores)")
        ->check(CLI::Range(0, 4096));
    cmd->add_option("--bw-mib", a->bw_mib, "RAM bandwidth buffer, MiB (default 512)")
        ->check(CLI::Range(1, 65536));
    cmd->add_flag("--json", a->json, "print one JSON object");
    cmd->add_option("--ranks", a->ranks,
                    "also predict each rank's resident memory under mpirun -np N --expert-parallel")
        ->check(CLI::Range(1, 1 << 16));
    cmd->add_flag("--tensors", a->tensors, "also list every tensor with its role");
    cmd->callback([a, &exit_code] { exit_code = run_inspect(*a); });
}

}  // namespace moe::cli
