#include "analysis/routing_stats.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/atomic_file.h"
#include "core/input_file.h"

namespace moe {

namespace {

const char* kFormat = "moeinfer-routing-stats";

const char* gating_name(Gating g) {
    switch (g) {
        case Gating::Softmax:
            return "softmax";
        case Gating::Sigmoid:
            return "sigmoid";
        case Gating::SoftmaxAfterTopK:
            return "softmax_after_topk";
    }
    return "softmax";
}

// "blk.12.ffn_up_exps.weight" -> 12, else -1.
int block_index(const std::string& name) {
    if (name.rfind("blk.", 0) != 0) return -1;
    size_t i = 4;
    int v = 0;
    bool any = false;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9')
        v = v * 10 + (name[i++] - '0'), any = true;
    return any ? v : -1;
}

bool is_routed_expert(const std::string& name) {
    return name.find("_exps.") != std::string::npos;
}

// Routing distribution of one token over all experts: softmax of the logits (softmax gating,
// also gpt-oss whose weights are a softmax over the top-k), or normalised sigmoids.
void score_distribution(const float* logits, int n, Gating g, std::vector<double>& p) {
    p.resize(size_t(n));
    if (g == Gating::Sigmoid) {
        double s = 0;
        for (int e = 0; e < n; ++e) s += p[size_t(e)] = 1.0 / (1.0 + std::exp(-double(logits[e])));
        for (auto& v : p) v = s > 0 ? v / s : 1.0 / n;
        return;
    }
    double mx = -INFINITY;
    for (int e = 0; e < n; ++e) mx = std::max(mx, double(logits[e]));
    double s = 0;
    for (int e = 0; e < n; ++e) s += p[size_t(e)] = std::exp(double(logits[e]) - mx);
    for (auto& v : p) v /= s;
}

double mean(const std::vector<double>& v) {
    if (v.empty()) return 0;
    double s = 0;
    for (double x : v) s += x;
    return s / double(v.size());
}

}  // namespace

double entropy_bits(const double* w, int n) {
    double s = 0;
    for (int i = 0; i < n; ++i) s += w[i];
    if (s <= 0) return 0;
    double h = 0;
    for (int i = 0; i < n; ++i)
        if (w[i] > 0) h -= (w[i] / s) * std::log2(w[i] / s);
    return h;
}

int64_t WeightTable::active_params() const {
    int64_t a = non_routed_params;
    for (int64_t p : expert_params) a += p * n_expert_used;
    return a;
}

WeightTable weight_table(const Model& m) {
    WeightTable wt;
    const ModelConfig& c = m.config;
    wt.n_expert = c.moe.n_expert;
    wt.n_expert_used = c.moe.n_expert_used;
    std::vector<int> moe_of_layer(size_t(c.n_layer), -1);
    int nm = 0;
    for (int il = 0; il < c.n_layer && il < int(c.is_moe.size()); ++il)
        if (c.is_moe[size_t(il)]) moe_of_layer[size_t(il)] = nm++;
    wt.expert_params.assign(size_t(nm), 0);
    wt.expert_bytes.assign(size_t(nm), 0);
    if (!m.source) return wt;
    const auto names = m.source->tensor_names();
    const bool tied = std::find(names.begin(), names.end(), "output.weight") == names.end();
    for (const auto& name : names) {
        const auto t = m.source->tensor(name);
        if (!t) continue;
        const int64_t params = t->shape.numel(), bytes = t->nbytes();
        wt.total_params += params;
        wt.total_bytes += bytes;
        const int blk = block_index(name);
        if (is_routed_expert(name) && blk >= 0 && blk < c.n_layer &&
            moe_of_layer[size_t(blk)] >= 0 && wt.n_expert > 0) {
            const size_t l = size_t(moe_of_layer[size_t(blk)]);
            wt.expert_params[l] += params / wt.n_expert;
            wt.expert_bytes[l] += bytes / wt.n_expert;
            continue;
        }
        wt.non_routed_params += params;
        if (name == "token_embd.weight") {
            wt.embd_row_bytes = t->row_bytes();
            if (tied) wt.pass_bytes += bytes;
        } else {
            wt.pass_bytes += bytes;
        }
    }
    return wt;
}

RoutingStats::RoutingStats(int n_moe_layers, int n_expert, int n_expert_used, Gating gating)
    : n_layers_(std::max(0, n_moe_layers)),
      n_expert_(std::max(0, n_expert)),
      k_(std::max(0, n_expert_used)),
      gating_(gating) {
    for (int l = 0; l < n_layers_; ++l) layer_index_.push_back(l);
    init();
}

RoutingStats::RoutingStats(const Model& m)
    : n_layers_(m.config.n_moe_layers()),
      n_expert_(m.config.moe.n_expert),
      k_(m.config.moe.n_expert_used),
      gating_(m.config.moe.gating),
      has_weights_(true),
      wt_(weight_table(m)) {
    for (int il = 0; il < int(m.config.is_moe.size()); ++il)
        if (m.config.is_moe[size_t(il)]) layer_index_.push_back(il);
    model_info_ = {{"path", m.source ? m.source->path() : ""},
                   {"family", m.config.family},
                   {"name", m.config.name},
                   {"n_layer", m.config.n_layer}};
    init();
}

void RoutingStats::init() {
    counts_.assign(size_t(n_layers_), std::vector<int64_t>(size_t(n_expert_), 0));
    pair_counts_.assign(size_t(n_layers_),
                        std::vector<int64_t>(size_t(n_expert_) * size_t(n_expert_), 0));
    prob_sum_.assign(size_t(n_layers_), std::vector<double>(size_t(n_expert_), 0.0));
    token_entropy_sum_.assign(size_t(n_layers_), 0.0);
    layer_tokens_.assign(size_t(n_layers_), 0);
    layer_selected_.assign(size_t(n_layers_), 0);
    for (auto& d : distinct_sum_) d.assign(size_t(n_layers_), 0);
}

void RoutingStats::add_block(const float* logits, const int32_t* sel, int64_t T, int l) {
    auto& cnt = counts_[size_t(l)];
    auto& pairs = pair_counts_[size_t(l)];
    std::vector<uint8_t> touched(size_t(n_expert_), 0);
    std::vector<int32_t> ids;
    std::vector<double> p;
    for (int64_t t = 0; t < T; ++t) {
        ids.clear();
        for (int j = 0; j < k_; ++j) {
            const int32_t e = sel[t * k_ + j];
            if (e < 0 || e >= n_expert_) continue;
            if (std::find(ids.begin(), ids.end(), e) != ids.end()) continue;
            ids.push_back(e);
        }
        std::sort(ids.begin(), ids.end());
        for (size_t a = 0; a < ids.size(); ++a) {
            ++cnt[size_t(ids[a])];
            touched[size_t(ids[a])] = 1;
            for (size_t b = a + 1; b < ids.size(); ++b)
                ++pairs[size_t(ids[a]) * size_t(n_expert_) + size_t(ids[b])];
        }
        layer_selected_[size_t(l)] += int64_t(ids.size());
        if (logits) {
            score_distribution(logits + t * n_expert_, n_expert_, gating_, p);
            for (int e = 0; e < n_expert_; ++e) prob_sum_[size_t(l)][size_t(e)] += p[size_t(e)];
            token_entropy_sum_[size_t(l)] += entropy_bits(p.data(), n_expert_);
        }
    }
    layer_tokens_[size_t(l)] += T;
    int64_t distinct = 0;
    for (auto v : touched) distinct += v;
    last_distinct_ = distinct;
}

Result<void> RoutingStats::add_pass(const RouterTrace& tr, RoutingPhase phase) {
    if (n_layers_ == 0 || n_expert_ == 0 || k_ == 0) return {};  // dense model: nothing routed
    if (tr.n_expert != n_expert_ || tr.n_expert_used != k_)
        return make_error("router trace has {} experts / top-{}, the statistics expect {} / top-{}",
                          tr.n_expert, tr.n_expert_used, n_expert_, k_);
    const size_t per_tok = size_t(n_layers_) * size_t(k_);
    if (tr.selected.empty() || tr.selected.size() % per_tok != 0)
        return make_error("router trace holds {} selections, not a multiple of {} MoE layers x {}",
                          tr.selected.size(), n_layers_, k_);
    const int64_t T = int64_t(tr.selected.size() / per_tok);
    const bool with_logits = tr.logits.size() == size_t(T) * size_t(n_layers_) * size_t(n_expert_);
    if (!tr.logits.empty() && !with_logits)
        return make_error("router trace logits hold {} values, expected {}", tr.logits.size(),
                          size_t(T) * size_t(n_layers_) * size_t(n_expert_));
    const int ph = phase == RoutingPhase::Prefill ? 0 : 1;
    for (int64_t t = 0; t < T; ++t) {
        if (int64_t(token_experts_.size()) >= kMaxTokenExperts) {
            token_experts_truncated_ = true;
            break;
        }
        auto& tok = token_experts_.emplace_back(size_t(n_layers_));
        for (int l = 0; l < n_layers_; ++l) {
            const int32_t* sel =
                tr.selected.data() + (size_t(l) * size_t(T) + size_t(t)) * size_t(k_);
            tok[size_t(l)].assign(sel, sel + k_);
        }
    }
    double bytes = 0;
    for (int l = 0; l < n_layers_; ++l) {
        add_block(
            with_logits ? tr.logits.data() + size_t(l) * size_t(T) * size_t(n_expert_) : nullptr,
            tr.selected.data() + size_t(l) * size_t(T) * size_t(k_), T, l);
        distinct_sum_[ph][size_t(l)] += last_distinct_;
        if (has_weights_) bytes += double(last_distinct_) * double(wt_.expert_bytes[size_t(l)]);
    }
    if (has_weights_) bytes += double(wt_.pass_bytes) + double(T) * double(wt_.embd_row_bytes);
    bytes_[ph] += bytes;
    tokens_[ph] += T;
    passes_[ph] += 1;
    return {};
}

Result<void> RoutingStats::add_eval_tokens(const RouterTrace& tr, int64_t n_tokens, int n_batch,
                                           RoutingPhase phase) {
    if (n_tokens <= 0 || n_batch <= 0) return make_error("no tokens in the router trace");
    if (n_layers_ == 0 || n_expert_ == 0 || k_ == 0) {  // dense: count tokens and weight bytes
        const int ph = phase == RoutingPhase::Prefill ? 0 : 1;
        const int64_t passes = (n_tokens + n_batch - 1) / n_batch;
        tokens_[ph] += n_tokens;
        passes_[ph] += passes;
        if (has_weights_)
            bytes_[ph] += double(passes) * double(wt_.pass_bytes) +
                          double(n_tokens) * double(wt_.embd_row_bytes);
        return {};
    }
    if (tr.selected.size() != size_t(n_tokens) * size_t(n_layers_) * size_t(k_))
        return make_error(
            "router trace holds {} selections, expected {} tokens x {} MoE layers x {}",
            tr.selected.size(), n_tokens, n_layers_, k_);
    const bool with_logits = !tr.logits.empty();
    size_t off_l = 0, off_s = 0;
    for (int64_t i0 = 0; i0 < n_tokens; i0 += n_batch) {
        const int64_t T = std::min<int64_t>(n_batch, n_tokens - i0);
        RouterTrace chunk;
        chunk.n_expert = tr.n_expert;
        chunk.n_expert_used = tr.n_expert_used;
        const size_t ns = size_t(T) * size_t(n_layers_) * size_t(k_);
        chunk.selected.assign(tr.selected.begin() + ptrdiff_t(off_s),
                              tr.selected.begin() + ptrdiff_t(off_s + ns));
        off_s += ns;
        if (with_logits) {
            const size_t nl = size_t(T) * size_t(n_layers_) * size_t(n_expert_);
            if (off_l + nl > tr.logits.size()) return make_error("router trace logits are short");
            chunk.logits.assign(tr.logits.begin() + ptrdiff_t(off_l),
                                tr.logits.begin() + ptrdiff_t(off_l + nl));
            off_l += nl;
        }
        MOE_TRY_VOID(add_pass(chunk, phase));
    }
    return {};
}

nlohmann::json RoutingStats::to_json() const {
    using nlohmann::json;
    json j;
    j["format"] = kFormat;
    j["version"] = 1;
    json model = model_info_.is_null() ? json::object() : model_info_;
    model["n_moe_layers"] = n_layers_;
    model["n_expert"] = n_expert_;
    model["n_expert_used"] = k_;
    model["gating"] = gating_name(gating_);
    j["model"] = model;
    j["tokens"] = {{"prefill", tokens_[0]},
                   {"decode", tokens_[1]},
                   {"total", tokens_[0] + tokens_[1]},
                   {"prefill_passes", passes_[0]},
                   {"decode_passes", passes_[1]}};

    json layers = json::array();
    std::vector<double> mm_all, cv_all, hload_all, htok_all;
    for (int l = 0; l < n_layers_; ++l) {
        const auto& cnt = counts_[size_t(l)];
        int64_t tot = 0, mx = 0;
        for (auto c : cnt) tot += c, mx = std::max(mx, c);
        const double mu = n_expert_ ? double(tot) / n_expert_ : 0;
        double var = 0;
        for (auto c : cnt) var += (double(c) - mu) * (double(c) - mu);
        var = n_expert_ ? var / n_expert_ : 0;
        const double cv = mu > 0 ? std::sqrt(var) / mu : 0;
        const double max_over_mean = mu > 0 ? double(mx) / mu : 0;
        std::vector<double> share(size_t(n_expert_), 0.0), cntd(cnt.begin(), cnt.end());
        for (int e = 0; e < n_expert_; ++e)
            share[size_t(e)] = tot ? double(cnt[size_t(e)]) / double(tot) : 0;
        const double hmax = n_expert_ > 1 ? std::log2(double(n_expert_)) : 1.0;
        const double h_load = entropy_bits(cntd.data(), n_expert_);
        const int64_t nt = layer_tokens_[size_t(l)];
        const bool has_scores =
            nt > 0 && std::any_of(prob_sum_[size_t(l)].begin(), prob_sum_[size_t(l)].end(),
                                  [](double v) { return v > 0; });
        const double h_mean = has_scores ? entropy_bits(prob_sum_[size_t(l)].data(), n_expert_) : 0;
        const double h_tok = has_scores ? token_entropy_sum_[size_t(l)] / double(nt) : 0;

        // Top 10 co-activated pairs (count desc, then indices).
        struct P {
            int a, b;
            int64_t n;
        };
        std::vector<P> ps;
        for (int a = 0; a < n_expert_; ++a)
            for (int b = a + 1; b < n_expert_; ++b) {
                const int64_t n =
                    pair_counts_[size_t(l)][size_t(a) * size_t(n_expert_) + size_t(b)];
                if (n > 0) ps.push_back({a, b, n});
            }
        std::sort(ps.begin(), ps.end(), [](const P& x, const P& y) {
            return x.n != y.n ? x.n > y.n : (x.a != y.a ? x.a < y.a : x.b < y.b);
        });
        if (ps.size() > 10) ps.resize(10);
        json pairs = json::array();
        for (const auto& p : ps)
            pairs.push_back({{"a", p.a},
                             {"b", p.b},
                             {"count", p.n},
                             {"share", nt ? double(p.n) / double(nt) : 0.0}});

        json L;
        L["moe_layer"] = l;
        L["layer"] = layer_index_[size_t(l)];
        L["tokens"] = nt;
        L["counts"] = cnt;
        L["load_share"] = share;
        L["max_over_mean"] = max_over_mean;
        L["cv"] = cv;
        L["load_entropy_bits"] = h_load;
        L["load_entropy_norm"] = h_load / hmax;
        if (has_scores) {
            L["mean_dist_entropy_bits"] = h_mean;
            L["token_entropy_bits"] = h_tok;
            L["mean_scores"] = std::vector<double>(prob_sum_[size_t(l)].size());
            for (int e = 0; e < n_expert_; ++e)
                L["mean_scores"][size_t(e)] = prob_sum_[size_t(l)][size_t(e)] / double(nt);
        } else {
            L["mean_dist_entropy_bits"] = nullptr;
            L["token_entropy_bits"] = nullptr;
        }
        L["max_entropy_bits"] = n_expert_ > 1 ? std::log2(double(n_expert_)) : 0.0;
        L["top_pairs"] = pairs;
        L["mean_distinct_prefill"] =
            passes_[0] ? double(distinct_sum_[0][size_t(l)]) / double(passes_[0]) : 0.0;
        L["mean_distinct_decode"] =
            passes_[1] ? double(distinct_sum_[1][size_t(l)]) / double(passes_[1]) : 0.0;
        layers.push_back(L);
        if (nt > 0) {
            mm_all.push_back(max_over_mean), cv_all.push_back(cv),
                hload_all.push_back(h_load / hmax);
            if (has_scores) htok_all.push_back(h_tok);
        }
    }
    j["layers"] = layers;
    j["token_experts"] = token_experts_;
    j["token_experts_truncated"] = token_experts_truncated_;
    if (!cache_.is_null()) j["cache"] = cache_;
    j["summary"] = {{"mean_max_over_mean", mean(mm_all)},
                    {"max_max_over_mean",
                     mm_all.empty() ? 0.0 : *std::max_element(mm_all.begin(), mm_all.end())},
                    {"mean_cv", mean(cv_all)},
                    {"mean_load_entropy_norm", mean(hload_all)},
                    {"mean_token_entropy_bits", mean(htok_all)}};

    if (has_weights_) {
        json w;
        w["total_params"] = wt_.total_params;
        w["total_bytes"] = wt_.total_bytes;
        w["non_routed_params"] = wt_.non_routed_params;
        w["active_params_static"] = wt_.active_params();
        w["expert_params"] = wt_.expert_params;
        w["expert_bytes"] = wt_.expert_bytes;
        w["pass_bytes"] = wt_.pass_bytes;
        w["embd_row_bytes"] = wt_.embd_row_bytes;
        // Measured: experts actually selected per token (deduplicated), per layer.
        double active = double(wt_.non_routed_params);
        for (int l = 0; l < n_layers_; ++l)
            if (layer_tokens_[size_t(l)] > 0)
                active += double(layer_selected_[size_t(l)]) / double(layer_tokens_[size_t(l)]) *
                          double(wt_.expert_params[size_t(l)]);
        if (n_layers_ == 0 || n_expert_ == 0) active = double(wt_.total_params);
        w["active_params_measured"] = active;
        auto per_tok = [&](int ph) { return tokens_[ph] ? bytes_[ph] / double(tokens_[ph]) : 0.0; };
        w["bytes_per_token_prefill"] = per_tok(0);
        w["bytes_per_token_decode"] = per_tok(1);
        const int64_t nt = tokens_[0] + tokens_[1];
        w["bytes_per_token"] = nt ? (bytes_[0] + bytes_[1]) / double(nt) : 0.0;
        j["weights"] = w;
    }
    return j;
}

Result<void> RoutingStats::write_json(const std::string& path) const {
    return write_file_atomic(path, to_json().dump(1) + "\n");
}

Result<nlohmann::json> read_routing_stats(const std::string& path) {
    MOE_TRY(const std::string text, read_input_file(path));
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return make_error("'{}' is not valid JSON", path);
    if (!j.is_object() || j.value("format", "") != kFormat)
        return make_error("'{}' is not a routing statistics file (format '{}' expected)", path,
                          kFormat);
    if (!j.contains("layers") || !j["layers"].is_array() || !j.contains("model") ||
        !j["model"].is_object())
        return make_error("'{}': routing statistics without model or layers", path);
    const auto& ne = j["model"].contains("n_expert") ? j["model"]["n_expert"] : nlohmann::json();
    if (!ne.is_number_integer() || ne.get<int64_t>() < 0 || ne.get<int64_t>() > (1 << 20))
        return make_error("'{}': model.n_expert is missing or invalid", path);
    const size_t n = size_t(ne.get<int64_t>());
    auto numbers = [n](const nlohmann::json& L, const char* key) {
        if (!L.contains(key) || !L[key].is_array() || L[key].size() != n) return false;
        return std::all_of(L[key].begin(), L[key].end(),
                           [](const auto& v) { return v.is_number(); });
    };
    for (const auto& L : j["layers"]) {
        if (!L.is_object() || !numbers(L, "counts") || !numbers(L, "load_share"))
            return make_error("'{}': a layer lacks {} counts and load shares", path, n);
        if (!L.contains("top_pairs") || !L["top_pairs"].is_array())
            return make_error("'{}': a layer lacks top_pairs", path);
        for (const auto& p : L["top_pairs"])
            if (!p.is_object()) return make_error("'{}': a top_pairs entry is not an object", path);
    }
    return j;
}

void RoutingStats::set_cache(const ExpertStoreStats& st) {
    using nlohmann::json;
    if (!st.cached) return;
    const int64_t n_tok = tokens_[0] + tokens_[1];
    auto layer_json = [&](const ExpertLayerStats& l) {
        const double acc = double(l.hits + l.misses);
        return json{
            {"hits", l.hits},
            {"misses", l.misses},
            {"hit_rate", acc > 0 ? double(l.hits) / acc : 0.0},
            {"bytes_read", l.bytes_read},
            {"bytes_read_per_token", n_tok > 0 ? double(l.bytes_read) / double(n_tok) : 0.0},
            {"stall_seconds", l.stall_s},
            {"predicted", l.predicted},
            {"predicted_used", l.predicted_used},
            {"prediction_rate",
             l.predicted > 0 ? double(l.predicted_used) / double(l.predicted) : 0.0},
            {"prefetched", l.prefetched},
            {"prefetch_hits", l.prefetch_hits}};
    };
    json layers = json::array();
    for (size_t i = 0; i < layer_index_.size(); ++i) {
        const int il = layer_index_[i];
        if (il < 0 || size_t(il) >= st.layers.size()) continue;
        json L = layer_json(st.layers[size_t(il)]);
        L["layer"] = il;
        layers.push_back(std::move(L));
    }
    cache_ = {{"policy", st.policy},         {"prefetch", st.prefetch},         {"slots", st.slots},
              {"slot_bytes", st.slot_bytes}, {"total", layer_json(st.total())}, {"layers", layers}};
}

}  // namespace moe
