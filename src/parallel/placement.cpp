#include "parallel/placement.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/input_file.h"

namespace moe {

Result<Placement> parse_placement(const std::string& s) {
    if (s == "contiguous") return Placement::Contiguous;
    if (s == "balanced") return Placement::Balanced;
    return make_error("--ep-placement '{}': expected contiguous or balanced", s);
}

int ExpertPlacement::owned(int rank, int il) const {
    const auto& o = owner[size_t(il)];
    return int(std::count(o.begin(), o.end(), rank));
}

Result<ExpertPlacement> place_experts(const std::vector<uint8_t>& is_moe, int n_expert, int n_ranks,
                                      Placement how,
                                      const std::vector<std::vector<double>>& counts) {
    int n_moe = 0;
    for (auto m : is_moe) n_moe += m;
    if (n_moe == 0) return make_error("--expert-parallel: the model has no MoE layers");
    if (n_ranks < 1) return make_error("--expert-parallel: {} ranks", n_ranks);
    if (n_ranks > n_expert)
        return make_error(
            "--expert-parallel: {} ranks but the model has only {} experts per MoE layer (each "
            "rank needs at least one; run with -np {} or fewer)",
            n_ranks, n_expert, n_expert);
    if (how == Placement::Balanced && int(counts.size()) != n_moe)
        return make_error("--ep-placement balanced: routing counts for {} MoE layers, model has {}",
                          counts.size(), n_moe);
    ExpertPlacement p;
    p.n_ranks = n_ranks, p.n_expert = n_expert;
    p.owner.resize(is_moe.size());
    const int cap = (n_expert + n_ranks - 1) / n_ranks;
    for (size_t il = 0, moe_i = 0; il < is_moe.size(); ++il) {
        if (!is_moe[il]) continue;
        auto& o = p.owner[il];
        o.assign(size_t(n_expert), 0);
        if (how == Placement::Contiguous) {
            for (int r = 0; r < n_ranks; ++r)
                for (int e = r * n_expert / n_ranks; e < (r + 1) * n_expert / n_ranks; ++e)
                    o[size_t(e)] = r;
        } else {
            const auto& c = counts[moe_i];
            std::vector<int> order(static_cast<size_t>(n_expert));
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(),
                             [&](int a, int b) { return c[size_t(a)] > c[size_t(b)]; });
            std::vector<double> load(static_cast<size_t>(n_ranks), 0.0);
            std::vector<int> held(static_cast<size_t>(n_ranks), 0);
            for (int e : order) {
                int best = -1;
                for (int r = 0; r < n_ranks; ++r)
                    if (held[size_t(r)] < cap && (best < 0 || load[size_t(r)] < load[size_t(best)]))
                        best = r;
                o[size_t(e)] = best;
                load[size_t(best)] += c[size_t(e)];
                ++held[size_t(best)];
            }
        }
        ++moe_i;
    }
    return p;
}

Result<std::vector<std::vector<double>>> read_routing_counts(const std::string& path,
                                                             int n_moe_layers, int n_expert) {
    MOE_TRY(const std::string text, read_input_file(path));
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("layers") || !j["layers"].is_array())
        return make_error("--routing-stats '{}': not a routing-stats JSON (no \"layers\" array)",
                          path);
    const auto& L = j["layers"];
    if (int(L.size()) != n_moe_layers)
        return make_error("--routing-stats '{}': {} layers, the model has {} MoE layers", path,
                          L.size(), n_moe_layers);
    std::vector<std::vector<double>> out;
    for (size_t i = 0; i < L.size(); ++i) {
        const auto& c =
            L[i].is_object() ? L[i].value("counts", nlohmann::json()) : nlohmann::json();
        if (!c.is_array() || int(c.size()) != n_expert)
            return make_error("--routing-stats '{}': layers[{}].counts is not {} numbers", path, i,
                              n_expert);
        std::vector<double> v;
        for (const auto& x : c) {
            if (!x.is_number() || !(x.get<double>() >= 0))
                return make_error(
                    "--routing-stats '{}': layers[{}].counts has a value that is "
                    "not a non-negative number",
                    path, i);
            v.push_back(x.get<double>());
        }
        out.push_back(std::move(v));
    }
    return out;
}

}  // namespace moe
