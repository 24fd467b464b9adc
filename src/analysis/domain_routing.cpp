#include "analysis/domain_routing.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "analysis/routing_report.h"

namespace moe {

double js_divergence_bits(std::span<const double> p, std::span<const double> q) {
    double sp = 0, sq = 0;
    for (double x : p) sp += x;
    for (double x : q) sq += x;
    if (sp <= 0 || sq <= 0 || p.size() != q.size()) return 0;
    double js = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        const double a = p[i] / sp, b = q[i] / sq, m = 0.5 * (a + b);
        if (a > 0) js += 0.5 * a * std::log2(a / m);
        if (b > 0) js += 0.5 * b * std::log2(b / m);
    }
    return std::clamp(js, 0.0, 1.0);
}

DomainRouting::DomainRouting(int n_moe_layers, int n_expert, int k, std::vector<std::string> names)
    : n_layers_(n_moe_layers), n_expert_(n_expert), k_(k), names_(std::move(names)) {}

Result<void> DomainRouting::add(int d, const RouterTrace& tr, int64_t T, int64_t t0, int64_t t1) {
    if (d < 0 || d >= n_domains()) return make_error("domain {} out of range", d);
    if (tr.n_expert_used != k_ || tr.selected.size() != size_t(n_layers_ * T * k_))
        return make_error("router trace of {} selections does not match {} layers x {} tokens x {}",
                          tr.selected.size(), n_layers_, T, k_);
    for (int64_t t = t0; t < t1; ++t) {
        label_.push_back(d);
        for (int l = 0; l < n_layers_; ++l) {
            const int32_t* s = &tr.selected[size_t((l * T + t) * k_)];
            selected_.insert(selected_.end(), s, s + k_);
        }
    }
    return {};
}

std::vector<std::vector<std::vector<double>>> DomainRouting::counts(
    std::span<const int> labels) const {
    if (labels.empty()) labels = label_;
    std::vector<std::vector<std::vector<double>>> c(
        names_.size(), std::vector<std::vector<double>>(size_t(n_layers_),
                                                        std::vector<double>(size_t(n_expert_))));
    const size_t per = size_t(n_layers_ * k_);
    for (size_t t = 0; t < labels.size(); ++t) {
        auto& cd = c[size_t(labels[t])];
        const int32_t* s = &selected_[t * per];
        for (int l = 0; l < n_layers_; ++l)
            for (int j = 0; j < k_; ++j) {
                const int32_t e = s[l * k_ + j];
                if (e >= 0 && e < n_expert_) cd[size_t(l)][size_t(e)] += 1;
            }
    }
    return c;
}

namespace {

// Pair statistics: for each pair (a < b) the mean over layers of JS(load_a, load_b).
std::vector<double> pair_stats(const std::vector<std::vector<std::vector<double>>>& c,
                               std::vector<std::vector<double>>* per_layer = nullptr) {
    std::vector<double> out;
    const size_t nd = c.size(), nl = nd ? c[0].size() : 0;
    for (size_t a = 0; a < nd; ++a)
        for (size_t b = a + 1; b < nd; ++b) {
            double s = 0;
            std::vector<double> pl;
            for (size_t l = 0; l < nl; ++l) {
                const double js = js_divergence_bits(c[a][l], c[b][l]);
                s += js;
                pl.push_back(js);
            }
            out.push_back(nl ? s / double(nl) : 0);
            if (per_layer) per_layer->push_back(pl);
        }
    return out;
}

double mean_of(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / double(v.size());
}

}  // namespace

nlohmann::json DomainRouting::analyse(int n_permutations, uint64_t seed, int top_experts) const {
    const auto c = counts();
    std::vector<std::vector<double>> per_layer;
    const std::vector<double> obs = pair_stats(c, &per_layer);
    const double obs_all = mean_of(obs);

    // Permutation test: Fisher-Yates with mt19937_64 (its output is fixed by the standard; the
    // shuffle is written out so that every library gives the same permutations).
    std::vector<int64_t> exceed(obs.size(), 0);
    int64_t exceed_all = 0;
    std::mt19937_64 rng(seed);
    std::vector<int> perm = label_;
    for (int p = 0; p < n_permutations; ++p) {
        for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[size_t(rng() % i)]);
        const std::vector<double> st = pair_stats(counts(perm));
        for (size_t i = 0; i < st.size(); ++i) exceed[i] += st[i] >= obs[i];
        exceed_all += mean_of(st) >= obs_all;
    }
    auto pval = [&](int64_t e) { return double(1 + e) / double(1 + n_permutations); };

    nlohmann::json j;
    j["names"] = names_;
    std::vector<int64_t> ntok(names_.size(), 0);
    for (int d : label_) ntok[size_t(d)]++;
    j["tokens"] = ntok;
    j["n_permutations"] = n_permutations;
    j["seed"] = seed;
    j["statistic"] = "mean over MoE layers of the Jensen-Shannon divergence (bits)";
    auto& layers = j["layers"] = nlohmann::json::array();
    for (int l = 0; l < n_layers_; ++l) {
        nlohmann::json cl = nlohmann::json::array();
        for (size_t d = 0; d < names_.size(); ++d) cl.push_back(c[d][size_t(l)]);
        layers.push_back({{"counts", cl}});
    }
    auto& pairs = j["pairs"] = nlohmann::json::array();
    size_t pi = 0;
    for (size_t a = 0; a < names_.size(); ++a)
        for (size_t b = a + 1; b < names_.size(); ++b, ++pi)
            pairs.push_back({{"a", names_[a]},
                             {"b", names_[b]},
                             {"js_mean", obs[pi]},
                             {"js_per_layer", per_layer[pi]},
                             {"permutations_at_least", exceed[pi]},
                             {"p_value", pval(exceed[pi])}});
    j["overall"] = {
        {"js_mean", obs_all}, {"permutations_at_least", exceed_all}, {"p_value", pval(exceed_all)}};

    // Over-represented experts: share of the domain's slots vs the other domains' share, ranked
    // with 0.5 added to both counts so that a count of 1 against 0 does not top the list.
    auto& over = j["over_represented"] = nlohmann::json::array();
    for (size_t d = 0; d < names_.size(); ++d) {
        struct Item {
            int l, e;
            double n_in, n_out, tot_in, tot_out, ratio;
        };
        std::vector<Item> items;
        for (int l = 0; l < n_layers_; ++l) {
            double tin = 0, tout = 0;
            for (size_t x = 0; x < names_.size(); ++x)
                for (double v : c[x][size_t(l)]) (x == d ? tin : tout) += v;
            for (int e = 0; e < n_expert_; ++e) {
                double out = 0;
                for (size_t x = 0; x < names_.size(); ++x)
                    if (x != d) out += c[x][size_t(l)][size_t(e)];
                const double in = c[d][size_t(l)][size_t(e)];
                const double ratio =
                    tin > 0 && tout > 0 ? ((in + 0.5) / tin) / ((out + 0.5) / tout) : 0;
                items.push_back({l, e, in, out, tin, tout, ratio});
            }
        }
        std::sort(items.begin(), items.end(),
                  [](const Item& x, const Item& y) { return x.ratio > y.ratio; });
        nlohmann::json list = nlohmann::json::array();
        for (size_t i = 0; i < items.size() && int(i) < top_experts; ++i) {
            const Item& it = items[i];
            list.push_back({{"layer", it.l},
                            {"expert", it.e},
                            {"ratio", it.ratio},
                            {"count", it.n_in},
                            {"share", it.tot_in > 0 ? it.n_in / it.tot_in : 0},
                            {"other_count", it.n_out},
                            {"other_share", it.tot_out > 0 ? it.n_out / it.tot_out : 0}});
        }
        over.push_back({{"domain", names_[d]}, {"experts", list}});
    }
    return j;
}

namespace {

const char* kDomainColors[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a",
                               "#66a61e", "#e6ab02", "#a6761d", "#666666"};

// Rows (layer, domain) x expert columns, colour = share of the domain's slots in that layer.
std::string load_grid_svg(const nlohmann::json& dom, const std::vector<std::string>& layer_names) {
    const auto& names = dom.at("names");
    const auto& layers = dom.at("layers");
    const size_t nd = names.size(), nl = layers.size();
    const size_t ne = nl ? layers[0].at("counts")[0].size() : 0;
    const int cw = std::clamp(int(640 / std::max<size_t>(ne, 1)), 8, 40), ch = 16, ml = 150,
              mt = 40;
    const int W = ml + cw * int(ne) + 20, H = mt + ch * int(nl * nd) + int(nl) * 6 + 30;
    double vmax = 0;
    for (const auto& l : layers)
        for (const auto& row : l.at("counts")) {
            double s = 0, m = 0;
            for (double v : row) s += v, m = std::max(m, double(v));
            if (s > 0) vmax = std::max(vmax, m / s);
        }
    std::string s = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
        "{1}\" role=\"img\"><text x=\"{2}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">expert "
        "load share per layer and domain</text>\n",
        W, H, ml);
    for (size_t e = 0; e < ne; ++e)
        s += fmt::format(
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n",
            ml + cw * int(e) + cw / 2, mt - 4, e);
    int y = mt;
    for (size_t l = 0; l < nl; ++l) {
        for (size_t d = 0; d < nd; ++d, y += ch) {
            const auto& row = layers[l].at("counts")[d];
            double sum = 0;
            for (double v : row) sum += v;
            s += fmt::format(
                "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{} {}</text>\n",
                ml - 4, y + ch - 4, l < layer_names.size() ? layer_names[l] : "",
                html_escape(names[d].get<std::string>()));
            for (size_t e = 0; e < ne; ++e) {
                const double share = sum > 0 ? double(row[e]) / sum : 0;
                s += fmt::format(
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{} "
                    "expert "
                    "{}: {:.1f}% ({} slots)</title></rect>\n",
                    ml + cw * int(e), y, cw - 1, ch - 1, heat_color(vmax > 0 ? share / vmax : 0),
                    html_escape(names[d].get<std::string>()), e, 100 * share, double(row[e]));
            }
        }
        y += 6;
    }
    return s + "</svg>\n";
}

}  // namespace

std::string domains_report_section(const nlohmann::json& stats) {
    if (!stats.contains("domains")) return "";
    const auto& dom = stats.at("domains");
    const auto& names = dom.at("names");
    std::string h = "<h2 id=\"domains\">Expert specialisation by domain</h2>\n";
    std::string sizes;
    for (size_t d = 0; d < names.size(); ++d)
        sizes += fmt::format("{}<b>{}</b> {} tokens", d ? ", " : "",
                             html_escape(names[d].get<std::string>()),
                             dom.at("tokens")[d].get<int64_t>());
    const auto& ov = dom.at("overall");
    h += fmt::format(
        "<p class=\"summary\">Mean Jensen-Shannon divergence between the domains' expert loads: "
        "{:.4f} bits (0 = same experts, 1 = disjoint); a random split of the same tokens reaches "
        "it in {} of {} permutations (p = {:.4g}).</p>\n",
        ov.value("js_mean", 0.0), ov.value("permutations_at_least", 0),
        dom.value("n_permutations", 0), ov.value("p_value", 1.0));
    h += "<p class=\"note\">" + sizes +
         fmt::format(
             ". Permutation test: the domain labels shuffled over the tokens ({} permutations, "
             "seed {}), "
             "p = (1 + permutations at least as divergent) / (1 + permutations). Neighbouring "
             "tokens "
             "are not independent, so p-values are optimistic.</p>\n",
             dom.value("n_permutations", 0), dom.value("seed", 0));
    h += "<table><tr><th>pair</th><th>JS mean over layers (bits)</th><th>per "
         "layer</th><th>p-value</th></tr>\n";
    std::vector<std::string> cats;
    const auto& pairs = dom.at("pairs");
    const size_t nl = dom.at("layers").size();
    for (size_t l = 0; l < nl; ++l) cats.push_back(fmt::format("MoE layer {}", l));
    std::vector<BarSeries> series;
    size_t ci = 0;
    for (const auto& p : pairs) {
        std::string pl;
        for (const auto& v : p.at("js_per_layer"))
            pl += fmt::format("{}{:.4f}", pl.empty() ? "" : " ", v.get<double>());
        const std::string name = p.value("a", std::string()) + " vs " + p.value("b", std::string());
        h += fmt::format("<tr><td>{}</td><td>{:.4f}</td><td>{}</td><td>{:.4g}</td></tr>\n",
                         html_escape(name), p.value("js_mean", 0.0), pl, p.value("p_value", 1.0));
        series.push_back(
            {name, kDomainColors[ci++ % 8], p.at("js_per_layer").get<std::vector<double>>()});
    }
    h += "</table>\n";
    BarChartOptions o;
    o.title = "Jensen-Shannon divergence per layer";
    o.y_label = "bits";
    o.digits = 3;
    o.width = std::clamp(int(nl) * 110 + 160, 560, 1100);
    h += "<div class=\"chart\">" + bar_chart_svg(cats, series, o) + "</div>\n";
    std::vector<std::string> lnames;
    for (size_t l = 0; l < nl; ++l) lnames.push_back(fmt::format("L{}", l));
    h += "<div class=\"chart\">" + load_grid_svg(dom, lnames) + "</div>\n";
    h += "<h3>Experts most over-represented in each domain</h3>\n<p class=\"note\">ratio = share "
         "of the domain's routed slots / share of the other domains' (0.5 added to both counts "
         "for the ranking); the counts show how much evidence each ratio has.</p>\n<table><tr>"
         "<th>domain</th><th>MoE layer</th><th>expert</th><th>ratio</th><th>count here (share)</th>"
         "<th>count elsewhere (share)</th></tr>\n";
    for (const auto& od : dom.at("over_represented"))
        for (const auto& it : od.at("experts"))
            h += fmt::format(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2f}</td><td>{} ({:.1f}%)</td><td>{} "
                "({:.1f}%)</td></tr>\n",
                html_escape(od.value("domain", std::string())), it.value("layer", 0),
                it.value("expert", 0), it.value("ratio", 0.0), it.value("count", 0.0),
                100 * it.value("share", 0.0), it.value("other_count", 0.0),
                100 * it.value("other_share", 0.0));
    h += "</table>\n";
    return h;
}

}  // namespace moe
