#include "analysis/routing_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <fstream>

#include "analysis/domain_routing.h"
#include "core/atomic_file.h"

namespace moe {

using nlohmann::json;

std::string html_escape(std::string_view s) {
    std::string o;
    o.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&':
                o += "&amp;";
                break;
            case '<':
                o += "&lt;";
                break;
            case '>':
                o += "&gt;";
                break;
            case '"':
                o += "&quot;";
                break;
            case '\'':
                o += "&#39;";
                break;
            default:
                o += c;
        }
    }
    return o;
}

std::string group_thousands(int64_t v) {
    std::string d = std::to_string(v < 0 ? -v : v), o;
    for (size_t i = 0; i < d.size(); ++i) {
        if (i && (d.size() - i) % 3 == 0) o += ',';
        o += d[i];
    }
    return v < 0 ? "-" + o : o;
}

std::string human_count(double v) {
    const double a = std::abs(v);
    if (a >= 1e9) return fmt::format("{:.2f} G", v / 1e9);
    if (a >= 1e6) return fmt::format("{:.2f} M", v / 1e6);
    if (a >= 1e3) return fmt::format("{:.2f} k", v / 1e3);
    return fmt::format("{:.0f}", v);
}

std::string human_bytes(double v) {
    const double a = std::abs(v);
    if (a >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", v / (1024.0 * 1024 * 1024));
    if (a >= 1024.0 * 1024) return fmt::format("{:.2f} MiB", v / (1024.0 * 1024));
    if (a >= 1024.0) return fmt::format("{:.1f} KiB", v / 1024.0);
    return fmt::format("{:.0f} B", v);
}

const char* report_css() {
    return R"(
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; margin: 24px 32px; color: #1d2330;
       background: #ffffff; max-width: 1200px; }
h1 { font-size: 24px; margin: 0 0 6px 0; }
h2 { font-size: 18px; margin: 28px 0 8px 0; border-bottom: 2px solid #d9dde6; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px 0; }
p.note { color: #4a5366; font-size: 13px; margin: 4px 0 10px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px 0; }
th, td { border: 1px solid #cfd5e0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
td.pair { white-space: nowrap; text-align: right; font-size: 12px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.better { background: #e3f4e1; }
pre { white-space: pre-wrap; background: #f6f7fa; border: 1px solid #dde1ea; padding: 6px 8px;
      font-size: 12px; margin: 0; max-width: 520px; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; }
.chart { border: 1px solid #e1e5ee; padding: 6px; background: #fff; }
.kv td:first-child { font-weight: bold; background: #f6f7fa; }
.bad { color: #b2182b; font-weight: bold; }
.ok { color: #1a7f37; }
svg text { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; }
)";
}

std::string heat_color(double t) {
    // Anchors chosen for a light-to-dark sequential scale that stays readable in grey too.
    static const std::array<std::array<double, 3>, 6> c = {{{255, 247, 214},
                                                            {254, 217, 118},
                                                            {253, 141, 60},
                                                            {227, 26, 28},
                                                            {150, 0, 80},
                                                            {60, 0, 90}}};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    const double x = t * double(c.size() - 1);
    const size_t i = std::min(size_t(x), c.size() - 2);
    const double f = x - double(i);
    int rgb[3];
    for (int k = 0; k < 3; ++k)
        rgb[k] = int(std::lround(c[i][size_t(k)] * (1 - f) + c[i + 1][size_t(k)] * f));
    return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

namespace {

// A "nice" axis maximum and tick step for values up to v.
void nice_axis(double v, double& top, double& step) {
    if (!(v > 0)) v = 1;
    const double raw = v / 4;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double r = raw / mag;
    step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
    top = std::ceil(v / step - 1e-9) * step;
    if (top < v) top += step;
}

std::string fmt_num(double v, int digits) {
    if (std::abs(v) >= 1e4) return human_count(v);
    return fmt::format("{:.{}f}", v, digits);
}

double num_or_nan(const json& j, const char* key) {
    return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

}  // namespace

std::string bar_chart_svg(const std::vector<std::string>& cats,
                          const std::vector<BarSeries>& series, const BarChartOptions& o) {
    const int W = o.width, H = o.height;
    const int ml = 58, mr = 14, mt = 30;
    const int mb = 46 + (series.size() > 1 || std::isfinite(o.ref_line) ? 18 : 0);
    const int pw = W - ml - mr, ph = H - mt - mb;
    double vmax = 0;
    for (const auto& s : series)
        for (double v : s.values)
            if (std::isfinite(v)) vmax = std::max(vmax, v);
    if (std::isfinite(o.ref_line)) vmax = std::max(vmax, o.ref_line);
    double top, step;
    nice_axis(vmax * 1.08, top, step);
    std::string s = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} "
        "{}\" "
        "role=\"img\">\n",
        W, H, W, H);
    s += fmt::format("<text x=\"{}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
                     ml, html_escape(o.title));
    // Grid and y ticks.
    for (double y = 0; y <= top + step * 1e-6; y += step) {
        const double py = mt + ph - y / top * ph;
        s += fmt::format(
            "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#e3e6ee\"/>\n", ml, py,
            ml + pw, py);
        s += fmt::format(
            "<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\" "
            "fill=\"#333\">{}</text>\n",
            ml - 5, py + 4,
            fmt_num(y, step < 0.01 ? 4  // small divergences need more digits than loads
                       : step < 1  ? 2
                       : step < 10 ? 1
                                   : 0));
    }
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", ml, mt,
                     ml, mt + ph);
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", ml,
                     mt + ph, ml + pw, mt + ph);
    s += fmt::format(
        "<text transform=\"translate(14,{}) rotate(-90)\" font-size=\"12\" "
        "text-anchor=\"middle\">{}"
        "</text>\n",
        mt + ph / 2, html_escape(o.y_label));
    const size_t nc = cats.size(), ns = std::max<size_t>(1, series.size());
    const double gw = nc ? double(pw) / double(nc) : pw;
    const double bw = std::max(1.0, gw * 0.8 / double(ns));
    const bool labels = nc * ns <= 24;
    const size_t every = std::max<size_t>(1, nc / 24 + (nc % 24 ? 1 : 0));
    for (size_t c = 0; c < nc; ++c) {
        for (size_t k = 0; k < series.size(); ++k) {
            const double v = c < series[k].values.size() ? series[k].values[c] : NAN;
            if (!std::isfinite(v)) continue;
            const double h = std::max(0.0, v / top * ph);
            const double x = ml + gw * double(c) + gw * 0.1 + bw * double(k);
            s += fmt::format(
                "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
                "<title>{} {}: {}</title></rect>\n",
                x, mt + ph - h, bw, h, series[k].color, html_escape(cats[c]),
                html_escape(series[k].name), fmt_num(v, o.digits + 1));
            if (labels)
                s += fmt::format(
                    "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"middle\" "
                    "fill=\"#222\">{}</text>\n",
                    x + bw / 2, mt + ph - h - 3, fmt_num(v, o.digits));
        }
        if (c % every == 0)
            s += fmt::format(
                "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
                ml + gw * (double(c) + 0.5), mt + ph + 15, html_escape(cats[c]));
    }
    if (std::isfinite(o.ref_line)) {
        const double py = mt + ph - o.ref_line / top * ph;
        s += fmt::format(
            "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#1a7f37\" "
            "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
            ml, py, ml + pw, py);
        // Its key sits in the bottom-right corner, clear of the bars.
        s += fmt::format(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#1a7f37\" stroke-width=\"1.5\" "
            "stroke-dasharray=\"6 4\"/>\n",
            W - mr - int(6.3 * double(o.ref_label.size())) - 26, H - 10,
            W - mr - int(6.3 * double(o.ref_label.size())) - 6, H - 10);
        s += fmt::format(
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" "
            "fill=\"#1a7f37\">{}</text>\n",
            W - mr, H - 6, html_escape(o.ref_label));
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n",
                     ml + pw / 2, mt + ph + 32, html_escape(o.x_label));
    if (series.size() > 1) {
        double x = ml;
        for (const auto& se : series) {
            s += fmt::format(
                "<rect x=\"{:.0f}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n", x, H - 16,
                se.color);
            s += fmt::format("<text x=\"{:.0f}\" y=\"{}\" font-size=\"12\">{}</text>\n", x + 16,
                             H - 6, html_escape(se.name));
            x += 30 + 7.5 * double(se.name.size());
        }
    }
    s += "</svg>\n";
    return s;
}

std::string routing_heatmap_svg(const json& stats) {
    const auto& layers = stats["layers"];
    const int nl = int(layers.size());
    const int ne = stats["model"].value("n_expert", 0);
    if (nl == 0 || ne == 0) return "<p class=\"note\">No MoE layers: nothing is routed.</p>\n";
    const int cw = std::clamp(880 / ne, 5, 56), ch = std::clamp(420 / nl, 8, 34);
    const int ml = 70, mt = 34, pw = cw * ne, ph = ch * nl;
    const int legend_w = 300, W = std::max({ml + pw + 20, ml + legend_w + 170, 640});
    const int H = mt + ph + 100;
    double smax = 0;
    for (const auto& L : layers)
        for (const auto& v : L["load_share"]) smax = std::max(smax, v.get<double>());
    if (smax <= 0) smax = 1;
    const double uniform = 1.0 / ne;
    std::string s = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} "
        "{}\" "
        "role=\"img\" id=\"heatmap\">\n",
        W, H, W, H);
    s += fmt::format(
        "<text x=\"{}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">Load share per expert "
        "(share of the layer's routed token slots)</text>\n",
        ml);
    const bool cell_text = cw >= 34 && ch >= 16;
    const int every_layer = std::max(1, (13 + ch - 1) / ch);
    for (int l = 0; l < nl; ++l) {
        const auto& share = layers[size_t(l)]["load_share"];
        const auto& cnt = layers[size_t(l)]["counts"];
        for (int e = 0; e < ne && e < int(share.size()); ++e) {
            const double v = share[size_t(e)].get<double>();
            const double t = v / smax;
            s += fmt::format(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#ffffff\" "
                "stroke-width=\"{}\"><title>layer {} expert {}: {:.2f}% ({} "
                "tokens)</title></rect>\n",
                ml + e * cw, mt + l * ch, cw, ch, heat_color(t), cw >= 8 ? 1 : 0,
                layers[size_t(l)].value("layer", l), e, v * 100, cnt[size_t(e)].get<int64_t>());
            if (cell_text)
                s += fmt::format(
                    "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" "
                    "fill=\"{}\">{:.1f}"
                    "</text>\n",
                    ml + e * cw + cw / 2, mt + l * ch + ch / 2 + 4,
                    t > 0.55 ? "#ffffff" : "#1d2330", v * 100);
        }
        if (l % every_layer == 0)  // rows shorter than a label: label every few rows
            s += fmt::format(
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">L{}</text>\n", ml - 6,
                mt + l * ch + ch / 2 + 4, layers[size_t(l)].value("layer", l));
    }
    const int every = std::max(1, (ne * 16 + pw - 1) / pw);
    for (int e = 0; e < ne; e += every)
        s += fmt::format(
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
            ml + e * cw + cw / 2, mt + ph + 14, e);
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">expert index"
        "</text>\n",
        ml + pw / 2, mt + ph + 30);
    s += fmt::format(
        "<text transform=\"translate(16,{}) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">"
        "MoE layer</text>\n",
        mt + ph / 2);
    // Legend: a gradient from 0 to the maximum share, uniform share marked.
    const int ly = mt + ph + 48, lx = ml;
    s += "<defs><linearGradient id=\"heatgrad\" x1=\"0\" x2=\"1\" y1=\"0\" y2=\"0\">";
    for (int i = 0; i <= 10; ++i)
        s += fmt::format("<stop offset=\"{:.1f}\" stop-color=\"{}\"/>", i / 10.0,
                         heat_color(i / 10.0));
    s += "</linearGradient></defs>\n";
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"14\" fill=\"url(#heatgrad)\" "
        "stroke=\"#555\"/>\n",
        lx, ly, legend_w);
    for (int i = 0; i <= 4; ++i) {
        const int x = lx + legend_w * i / 4;
        s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", x,
                         ly + 14, x, ly + 19);
        s += fmt::format(
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{:.1f}%</text>\n", x,
            ly + 31, smax * 100 * i / 4);
    }
    if (uniform <= smax) {
        const double x = lx + legend_w * uniform / smax;
        s += fmt::format(
            "<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#1a7f37\" "
            "stroke-width=\"2\"/>\n",
            x, ly - 4, x, ly + 18);
        s += fmt::format(
            "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#1a7f37\">"
            "uniform {:.1f}%</text>\n",
            x, ly - 7, uniform * 100);
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\">load share (colour scale)</text>\n",
                     lx + legend_w + 14, ly + 12);
    s += "</svg>\n";
    return s;
}

// The expert cache's counters per layer (--mem-budget / --cache-slots runs): hits, misses, and
// with --prefetch on the predictions routed and the accesses a prefetch served.
std::string cache_report_section(const json& stats, const std::string& id) {
    if (!stats.contains("cache") || !stats["cache"].is_object()) return {};
    const json& c = stats["cache"];
    const bool pf = c.value("prefetch", false);
    std::string h = "<h3 id=\"" + id + "cache\">Expert cache</h3>\n";
    h += fmt::format(
        "<p class=\"note\">Policy {}, {} slots of {}, prefetch {}. A prefetch hit is an access "
        "served by a slot the prediction of the layer (its router applied to the previous "
        "layer's output) filled; predicted routed is the share of predicted experts that were "
        "then routed.</p>\n<table>\n<tr><th>layer</th><th>hits</th><th>misses</th><th>hit "
        "rate</th><th>prefetch hits</th><th>predicted routed</th><th>read/token</th><th>stall "
        "s</th></tr>\n",
        html_escape(c.value("policy", "")), c.value("slots", int64_t(0)),
        human_bytes(double(c.value("slot_bytes", int64_t(0)))), pf ? "on" : "off");
    auto line = [&](const std::string& name, const json& L) {
        const int64_t pred = L.value("predicted", int64_t(0));
        h += fmt::format(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}%</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{:.3f}</td></tr>\n",
            name, group_thousands(L.value("hits", int64_t(0))),
            group_thousands(L.value("misses", int64_t(0))), 100 * L.value("hit_rate", 0.0),
            pf ? group_thousands(L.value("prefetch_hits", int64_t(0))) : "-",
            pf && pred > 0 ? fmt::format("{:.1f}%", 100 * L.value("prediction_rate", 0.0)) : "-",
            human_bytes(L.value("bytes_read_per_token", 0.0)), L.value("stall_seconds", 0.0));
    };
    if (c.contains("layers"))
        for (const auto& L : c["layers"]) line(fmt::format("L{}", L.value("layer", 0)), L);
    if (c.contains("total")) line("<b>all</b>", c["total"]);
    h += "</table>\n";
    return h;
}

// Expert parallelism (`run --expert-parallel --routing-stats`): which rank holds each expert of
// each layer, and the share of the layer's routed slots each rank computed. Skipped when the
// file has no (well-formed) "expert_parallel" object.
static std::string placement_section(const json& stats, const std::string& id) {
    if (!stats.contains("expert_parallel") || !stats["expert_parallel"].is_object()) return {};
    const auto& ep = stats["expert_parallel"];
    const auto& layers = stats["layers"];
    if (!ep.contains("ranks") || !ep["ranks"].is_number_integer() || !ep.contains("layers") ||
        !ep["layers"].is_array() || ep["layers"].size() != layers.size())
        return {};
    const int64_t n_ranks = ep["ranks"].get<int64_t>();
    if (n_ranks < 1 || n_ranks > 4096) return {};
    std::string rows;
    for (size_t i = 0; i < layers.size(); ++i) {
        const auto& r =
            ep["layers"][i].is_object() ? ep["layers"][i].value("rank", json()) : json();
        const auto& c = layers[i].value("counts", json());
        if (!r.is_array() || !c.is_array() || r.size() != c.size()) return {};
        std::vector<double> load(static_cast<size_t>(n_ranks), 0.0);
        std::vector<std::string> experts(static_cast<size_t>(n_ranks));
        double total = 0;
        for (size_t e = 0; e < r.size(); ++e) {
            if (!r[e].is_number_integer() || !c[e].is_number()) return {};
            const int64_t k = r[e].get<int64_t>();
            if (k < 0 || k >= n_ranks) return {};
            load[size_t(k)] += c[e].get<double>();
            total += c[e].get<double>();
            experts[size_t(k)] += (experts[size_t(k)].empty() ? "" : " ") + std::to_string(e);
        }
        rows += fmt::format("<tr><td>L{}</td>", layers[i].value("layer", 0));
        for (int64_t k = 0; k < n_ranks; ++k)
            rows += fmt::format("<td>{:.1f}%<br><span class=\"note\">{}</span></td>",
                                total > 0 ? 100.0 * load[size_t(k)] / total : 0.0,
                                html_escape(experts[size_t(k)]));
        rows += "</tr>\n";
    }
    std::string h = "<h3 id=\"" + id + "placement\">Expert placement over " +
                    std::to_string(n_ranks) +
                    " ranks</h3>\n<p class=\"note\">Per layer and rank (expert parallelism): the "
                    "share of the layer's routed slots the rank computed, and its experts.</p>\n"
                    "<table>\n<tr><th>layer</th>";
    for (int64_t k = 0; k < n_ranks; ++k) h += fmt::format("<th>rank {}</th>", k);
    return h + "</tr>\n" + rows + "</table>\n";
}

std::string routing_report_sections(const json& stats, const std::string& id) {
    const auto& m = stats["model"];
    const auto& layers = stats["layers"];
    std::string h;
    h += "<table class=\"kv\">\n";
    auto row = [&](const std::string& k, const std::string& v) {
        h += "<tr><td>" + html_escape(k) + "</td><td>" + v + "</td></tr>\n";
    };
    if (m.contains("path")) row("model", html_escape(m.value("path", "")));
    if (m.contains("family"))
        row("family / name", html_escape(m.value("family", "") + " / " + m.value("name", "")));
    row("experts", fmt::format("{} routed per MoE layer, top-{} ({} gating), {} MoE layers",
                               m.value("n_expert", 0), m.value("n_expert_used", 0),
                               html_escape(m.value("gating", "")), m.value("n_moe_layers", 0)));
    if (stats.contains("tokens")) {
        const auto& t = stats["tokens"];
        const int pp = t.value("prefill_passes", 0), dp = t.value("decode_passes", 0);
        row("tokens routed",
            fmt::format("{} prompt ({} pass{}) + {} generated ({} pass{})", t.value("prefill", 0),
                        pp, pp == 1 ? "" : "es", t.value("decode", 0), dp, dp == 1 ? "" : "es"));
    }
    if (stats.contains("weights")) {
        const auto& w = stats["weights"];
        row("parameters",
            fmt::format(
                "{} total; active per token {} (from shapes), {} measured",
                group_thousands(w.value("total_params", int64_t(0))),
                group_thousands(w.value("active_params_static", int64_t(0))),
                group_thousands(int64_t(std::llround(w.value("active_params_measured", 0.0))))));
        row("weight bytes read per token",
            fmt::format("prefill {}, decode {} (weights on disk: {})",
                        human_bytes(w.value("bytes_per_token_prefill", 0.0)),
                        human_bytes(w.value("bytes_per_token_decode", 0.0)),
                        human_bytes(double(w.value("total_bytes", int64_t(0))))));
    }
    if (stats.contains("summary")) {
        const auto& su = stats["summary"];
        row("imbalance",
            fmt::format("max/mean {:.2f} on average over layers (worst {:.2f}); CV {:.3f}",
                        su.value("mean_max_over_mean", 0.0), su.value("max_max_over_mean", 0.0),
                        su.value("mean_cv", 0.0)));
    }
    h += "</table>\n";
    if (layers.empty()) {
        h += "<p class=\"note\">This model has no MoE layers: nothing is routed.</p>\n";
        return h;
    }

    h += "<h3 id=\"" + id + "heat\">Expert load per layer</h3>\n";
    h += "<p class=\"note\">Each cell is the share of a layer's routed (token, expert) slots that "
         "went to the expert. With perfect balance every cell equals the uniform share marked on "
         "the legend.</p>\n";
    h += "<div class=\"chart\">" + routing_heatmap_svg(stats) + "</div>\n";
    h += placement_section(stats, id);

    std::vector<std::string> cats;
    std::vector<double> mm, cv, hmean, htok, hload;
    double hmax = 0;
    for (const auto& L : layers) {
        cats.push_back(fmt::format("L{}", L.value("layer", 0)));
        mm.push_back(num_or_nan(L, "max_over_mean"));
        cv.push_back(num_or_nan(L, "cv"));
        hmean.push_back(num_or_nan(L, "mean_dist_entropy_bits"));
        htok.push_back(num_or_nan(L, "token_entropy_bits"));
        hload.push_back(num_or_nan(L, "load_entropy_bits"));
        hmax = std::max(hmax, L.value("max_entropy_bits", 0.0));
    }
    const int cw = std::clamp(int(cats.size()) * 40 + 120, 360, 1100);
    h += "<h3 id=\"" + id + "imbalance\">Load imbalance per layer</h3>\n<div class=\"charts\">\n";
    BarChartOptions o1;
    o1.title = "max / mean expert load";
    o1.y_label = "max / mean";
    o1.x_label = "MoE layer";
    o1.width = cw;
    o1.ref_line = 1.0;
    o1.ref_label = "1.0 = balanced";
    h += "<div class=\"chart\">" + bar_chart_svg(cats, {{"max/mean", "#d95f02", mm}}, o1) +
         "</div>\n";
    BarChartOptions o2 = o1;
    o2.title = "coefficient of variation of expert load";
    o2.y_label = "CV (std / mean)";
    o2.ref_line = NAN;
    o2.digits = 3;
    h += "<div class=\"chart\">" + bar_chart_svg(cats, {{"CV", "#7570b3", cv}}, o2) + "</div>\n";
    h += "</div>\n";

    h += "<h3 id=\"" + id + "entropy\">Routing entropy per layer</h3>\n";
    h += fmt::format(
        "<p class=\"note\">Bits. <b>load</b>: entropy of the expert load distribution; <b>mean "
        "distribution</b>: entropy of the router's score distribution averaged over tokens; "
        "<b>per token</b>: mean entropy of each token's score distribution (low = decisive "
        "router). Maximum log2({}) = {:.2f} bits.</p>\n",
        m.value("n_expert", 0), hmax);
    BarChartOptions o3 = o1;
    o3.title = "routing entropy";
    o3.y_label = "bits";
    o3.ref_line = hmax;
    o3.ref_label = "maximum (uniform)";
    o3.width = std::clamp(int(cats.size()) * 90 + 140, 560, 1100);
    h += "<div class=\"chart\">" +
         bar_chart_svg(cats,
                       {{"load", "#1b9e77", hload},
                        {"mean distribution", "#66a61e", hmean},
                        {"per token", "#e7298a", htok}},
                       o3) +
         "</div>\n";

    h += "<h3 id=\"" + id + "pairs\">Most frequently co-activated expert pairs</h3>\n";
    h += "<p class=\"note\">Pairs of experts selected together for one token; count and share of "
         "the layer's tokens.</p>\n<table>\n<tr><th>layer</th>";
    size_t npairs = 0;
    for (const auto& L : layers) npairs = std::max(npairs, L["top_pairs"].size());
    for (size_t i = 0; i < npairs; ++i) h += fmt::format("<th>#{}</th>", i + 1);
    h += "</tr>\n";
    for (const auto& L : layers) {
        h += fmt::format("<tr><td>L{}</td>", L.value("layer", 0));
        for (size_t i = 0; i < npairs; ++i) {
            if (i < L["top_pairs"].size()) {
                const auto& p = L["top_pairs"][i];
                h += fmt::format("<td class=\"pair\">{}+{}: {} ({:.0f}%)</td>", p.value("a", 0),
                                 p.value("b", 0), p.value("count", int64_t(0)),
                                 p.value("share", 0.0) * 100);
            } else {
                h += "<td></td>";
            }
        }
        h += "</tr>\n";
    }
    h += "</table>\n";
    h += cache_report_section(stats, id);  // only when the run had an expert cache
    h += domains_report_section(stats);    // only when the file has domains
    return h;
}

std::string routing_report_html(const json& stats) {
    const auto& m = stats["model"];
    std::string title = "Routing report";
    if (m.contains("name") && !m.value("name", "").empty()) title += ": " + m.value("name", "");
    std::string h =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
        html_escape(title) + "</title>\n<style>" + report_css() + "</style>\n</head>\n<body>\n";
    h += "<h1>" + html_escape(title) + "</h1>\n";
    h +=
        "<p class=\"note\">Generated by moeinfer routing-report from the router decisions of every "
        "forward pass (prompt and generated tokens).</p>\n";
    h += routing_report_sections(stats);
    h += "</body>\n</html>\n";
    return h;
}

Result<void> write_text_file(const std::string& path, const std::string& text) {
    return write_file_atomic(path, text);
}

}  // namespace moe
