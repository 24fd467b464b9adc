#include "analysis/sweep_report.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "analysis/routing_report.h"

namespace moe {
namespace {

struct Point {
    double x, y;
    std::string label;
    bool marked;  // the native k
};
struct Line {
    std::string name, color;
    std::vector<Point> pts;
};

// Lines with round markers on linear axes from 0 (or the data's minimum when from_zero is
// false); marked points get a ring and a "native" label.
std::string xy_plot_svg(const std::vector<Line>& lines, const std::string& title,
                        const std::string& xl, const std::string& yl, bool from_zero) {
    const int W = 500, H = 300, ml = 64, mr = 16, mt = 30, mb = 64;
    const int pw = W - ml - mr, ph = H - mt - mb;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (const auto& l : lines)
        for (const auto& p : l.pts) {
            x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
            y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
        }
    if (!std::isfinite(x0)) return "<p>(no data)</p>";
    if (from_zero) x0 = 0, y0 = 0;
    const double xpad = (x1 - x0) * 0.06 + 1e-9, ypad = (y1 - y0) * 0.1 + 1e-9;
    x0 = from_zero ? 0 : x0 - xpad, x1 += xpad;
    y0 = from_zero ? 0 : y0 - ypad, y1 += ypad;
    auto px = [&](double x) { return ml + (x - x0) / (x1 - x0) * pw; };
    auto py = [&](double y) { return mt + ph - (y - y0) / (y1 - y0) * ph; };
    std::string s = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
        "{1}\" role=\"img\">\n<text x=\"{2}\" y=\"18\" font-size=\"14\" "
        "font-weight=\"bold\">{3}</text>\n",
        W, H, ml, html_escape(title));
    for (int i = 0; i <= 4; ++i) {  // grid, ticks
        const double yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;
        s += fmt::format(
            "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#e3e6ee\"/>\n<text "
            "x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\" "
            "fill=\"#333\">{:.4g}</text>\n",
            ml, py(yv), ml + pw, py(yv), ml - 5, py(yv) + 4, yv);
        s += fmt::format(
            "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" "
            "fill=\"#333\">{:.4g}</text>\n",
            px(xv), mt + ph + 16, xv);
    }
    s += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#333\"/><line x1=\"{0}\" "
        "y1=\"{2}\" x2=\"{3}\" y2=\"{2}\" stroke=\"#333\"/>\n",
        ml, mt, mt + ph, ml + pw);
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n<text "
        "transform=\"translate(14,{}) rotate(-90)\" font-size=\"12\" "
        "text-anchor=\"middle\">{}</text>\n",
        ml + pw / 2, mt + ph + 34, html_escape(xl), mt + ph / 2, html_escape(yl));
    int li = 0;
    for (const auto& l : lines) {
        std::string path;
        for (const auto& p : l.pts)
            path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", px(p.x), py(p.y));
        s += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"4\"/>\n", path,
                         l.color);
        for (const auto& p : l.pts) {
            s += fmt::format(
                "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"7\" fill=\"{}\"><title>{}: {:.5g}, "
                "{:.5g}</title></circle>\n<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" "
                "text-anchor=\"middle\">{}</text>\n",
                px(p.x), py(p.y), l.color, html_escape(p.label), p.x, p.y, px(p.x), py(p.y) - 9,
                html_escape(p.label));
            if (p.marked)
                s += fmt::format(
                    "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"10\" fill=\"none\" stroke=\"#111\" "
                    "stroke-width=\"2\"/><text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" "
                    "font-weight=\"bold\" text-anchor=\"middle\">native</text>\n",
                    px(p.x), py(p.y), px(p.x), py(p.y) + 24);
        }
        const int lx = ml + 10 + li * 150, ly = H - 12;  // legend
        s += fmt::format(
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"{}\"/><text x=\"{}\" "
            "y=\"{}\" font-size=\"11\">{}</text>\n",
            lx, ly - 9, l.color, lx + 18, ly, html_escape(l.name));
        ++li;
    }
    return s + "</svg>\n";
}

}  // namespace

std::string sweep_report_section(const nlohmann::json& sw, const std::string& title) {
    const int n = sw.value("n_expert", 0);
    Line prompt{"prompt (batched windows)", "#1b9e77", {}};
    Line decode{"decode (one token at a time)", "#d95f02", {}};
    Line ppl{"perplexity", "#7570b3", {}};
    std::string rows;
    for (const auto& x : sw.at("rows")) {
        const int k = x.value("k", 0);
        const bool nat = x.value("native", false);
        const std::string lab = fmt::format("{} of {}", k, n);
        const double ap = x.value("active_params", 0.0) / 1e6;
        prompt.pts.push_back({ap, x.value("prompt_tps", 0.0), lab, nat});
        decode.pts.push_back({ap, x.value("decode_tps", 0.0), lab, nat});
        ppl.pts.push_back({double(k), x.value("ppl", 0.0), lab, nat});
        rows += fmt::format(
            "<tr{}><td>{}{}</td><td>{}</td><td>{}</td><td>{:.1f}</td><td>{:.1f}</td><td>{:.4f} "
            "&plusmn; {:.4f}</td><td>{:+.4f} &plusmn; {:.4f}</td><td>{:.5f} &plusmn; "
            "{:.5f}</td><td>{:.2f}%</td><td>{:.2f}%</td></tr>\n",
            nat ? " class=\"native\"" : "", lab, nat ? " (native)" : "",
            human_count(x.value("active_params", 0.0)),
            human_bytes(x.value("bytes_per_token", 0.0)), x.value("prompt_tps", 0.0),
            x.value("decode_tps", 0.0), x.value("ppl", 0.0), x.value("ppl_stderr", 0.0),
            x.value("dnll_mean", 0.0), x.value("dnll_stderr", 0.0), x.value("kl_mean", 0.0),
            x.value("kl_stderr", 0.0), 100.0 * x.value("top1_agreement", 0.0),
            100.0 * x.value("native_top1_kept", 0.0));
    }
    std::string h = "<h2 id=\"topk-sweep\">" + html_escape(title) + "</h2>\n";
    const std::string sum = sw.value("summary", std::string());  // one sentence group per line
    for (size_t b = 0, e; b < sum.size(); b = e + 1) {
        e = sum.find('\n', b);
        if (e == std::string::npos) e = sum.size();
        if (e > b) h += "<p class=\"summary\">" + html_escape(sum.substr(b, e - b)) + "</p>\n";
    }
    h += fmt::format(
        "<p class=\"note\">{} windows of {} tokens, {} predictions scored for every k, the same "
        "tokens for each. &Delta;NLL: paired per-token NLL difference to the native k (nats). KL: "
        "KL(P<sub>native</sub> &#8214; P<sub>k</sub>) per token (nats). top-1: next-token argmax "
        "equals native's. top-1 expert kept: (MoE layer, token) whose native top-1 expert is "
        "still chosen. Bytes per token: weights one decoded token reads.</p>\n",
        sw.value("n_windows", 0), sw.value("n_ctx", 0), sw.value("n_scored", 0));
    h += "<table class=\"sweep\"><tr><th>k</th><th>active params / token</th><th>bytes / "
         "token</th><th>prompt tok/s</th><th>decode tok/s</th><th>PPL</th><th>&Delta;NLL vs "
         "native</th><th>KL vs native</th><th>top-1</th><th>top-1 expert kept</th></tr>\n" +
         rows + "</table>\n";
    h += "<div class=\"charts\"><div class=\"chart\">" +
         xy_plot_svg({prompt}, "prompt speed vs active parameters",
                     "active parameters per token (millions)", "tokens / s", true) +
         "</div><div class=\"chart\">" +
         xy_plot_svg({decode}, "decode speed vs active parameters",
                     "active parameters per token (millions)", "tokens / s", true) +
         "</div><div class=\"chart\">" +
         xy_plot_svg({ppl}, "perplexity vs routed experts", "experts per token (k)", "perplexity",
                     false) +
         "</div></div>\n";
    return h;
}

std::string sweep_report_html(const nlohmann::json& sw, const std::string& title) {
    return std::string("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>") +
           html_escape(title) + "</title><style>" + report_css() +
           "tr.native td{font-weight:bold}</style></head><body>\n" +
           sweep_report_section(sw, title) + "</body></html>\n";
}

}  // namespace moe
