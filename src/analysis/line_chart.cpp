// line_chart_svg: linear axes from 0 to a rounded maximum, five ticks each, legend at the top.
#include "analysis/line_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "analysis/routing_report.h"

namespace moe {
namespace {

// 1, 2 or 5 times a power of ten, at least v.
double nice_ceiling(double v) {
    if (!(v > 0)) return 1;
    const double p = std::pow(10.0, std::floor(std::log10(v)));
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * p >= v) return m * p;
    return 10 * p;
}

}  // namespace

std::string line_chart_svg(const std::vector<LineSeries>& series, const LineChartOptions& o) {
    // The legend: one row per series under the title.
    const double left = 58, right = 14, top = 36 + 14.0 * double(series.size()), bottom = 44;
    const double pw = o.width - left - right, ph = o.height - top - bottom;
    double xmax = 0, ymax = 0;
    for (const auto& s : series)
        for (const auto& [x, y] : s.points)
            if (std::isfinite(x) && std::isfinite(y))
                xmax = std::max(xmax, x), ymax = std::max(ymax, y);
    xmax = nice_ceiling(xmax);
    ymax = nice_ceiling(ymax);
    auto X = [&](double x) { return left + pw * x / xmax; };
    auto Y = [&](double y) { return top + ph * (1 - y / ymax); };

    std::string s = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} "
        "{}\" "
        "role=\"img\" aria-label=\"{}\">\n",
        o.width, o.height, o.width, o.height, html_escape(o.title));
    s += fmt::format("<text x=\"{}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
                     left, html_escape(o.title));
    for (int i = 0; i <= 5; ++i) {
        const double yv = ymax * i / 5, xv = xmax * i / 5;
        s += fmt::format(
            "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n"
            "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"end\">{:.{}f}</text>\n",
            left, Y(yv), left + pw, Y(yv), left - 4, Y(yv) + 3, yv, o.digits);
        s += fmt::format(
            "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n",
            X(xv), top + ph + 14, fmt::format("{:g}", xv));
    }
    s += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#555\"/>"
        "<line x1=\"{0}\" y1=\"{2}\" x2=\"{3}\" y2=\"{2}\" stroke=\"#555\"/>\n",
        left, top, top + ph, left + pw);
    s += fmt::format(
        "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
        left + pw / 2, o.height - 6, html_escape(o.x_label));
    s += fmt::format(
        "<text transform=\"translate(12 {:.1f}) rotate(-90)\" font-size=\"11\" "
        "text-anchor=\"middle\">{}</text>\n",
        top + ph / 2, html_escape(o.y_label));
    for (size_t i = 0; i < series.size(); ++i) {
        const LineSeries& ser = series[i];
        const double ly = 30 + 14.0 * double(i);
        s += fmt::format(
            "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"{3}\" "
            "stroke-width=\"3\"{4}/><text x=\"{5:.1f}\" y=\"{6:.1f}\" "
            "font-size=\"10\">{7}</text>\n",
            left, ly, left + 22, ser.color, ser.dashed ? " stroke-dasharray=\"4 3\"" : "",
            left + 28, ly + 4, html_escape(ser.name));
    }
    // Predictions (dashed, wider) first, so the measured series stay visible on top.
    std::vector<const LineSeries*> order;
    for (const auto& ser : series)
        if (ser.dashed) order.push_back(&ser);
    for (const auto& ser : series)
        if (!ser.dashed) order.push_back(&ser);
    for (const LineSeries* sp : order) {
        const LineSeries& ser = *sp;
        auto pts = ser.points;
        std::sort(pts.begin(), pts.end());
        std::string path;
        for (const auto& [x, y] : pts) {
            if (!std::isfinite(x) || !std::isfinite(y)) continue;
            path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", X(x), Y(y));
        }
        if (path.empty()) continue;
        s += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}/>\n",
                         path, ser.color, ser.width, ser.dashed ? " stroke-dasharray=\"6 4\"" : "");
        if (ser.markers)
            for (const auto& [x, y] : pts)
                if (std::isfinite(x) && std::isfinite(y))
                    s +=
                        fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4.5\" fill=\"{}\"/>\n",
                                    X(x), Y(y), ser.color);
    }
    return s + "</svg>";
}

}  // namespace moe
