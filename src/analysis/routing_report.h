// Self-contained HTML reports (inline CSS and SVG generated here; nothing is fetched when the page
// is viewed): the routing report of one statistics file, and the drawing helpers the compare
// report shares with it.
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace moe {

std::string html_escape(std::string_view s);
// "1,234,567"
std::string group_thousands(int64_t v);
// 1234567 -> "1.23 M", 1234 -> "1.23 k"
std::string human_count(double v);
// bytes -> "1.5 MiB"
std::string human_bytes(double v);

// The page's stylesheet (inline in <style>).
const char* report_css();

// Sequential colour scale for t in [0, 1] (light for low, dark for high): "#rrggbb".
std::string heat_color(double t);

// One bar series of a grouped bar chart.
struct BarSeries {
    std::string name, color;
    std::vector<double> values;  // one per category; NaN = no bar
};

struct BarChartOptions {
    std::string title, y_label, x_label;
    int width = 560, height = 260;
    double ref_line = NAN;  // horizontal reference (e.g. 1.0 = perfectly balanced)
    std::string ref_label;
    int digits = 2;  // value labels
};

// Grouped vertical bar chart with axes, ticks, labels, legend.
std::string bar_chart_svg(const std::vector<std::string>& categories,
                          const std::vector<BarSeries>& series, const BarChartOptions& o);

// Layer x expert heatmap of load share, with axis labels and a colour legend.
std::string routing_heatmap_svg(const nlohmann::json& stats);

// The report's sections (summary, heatmap, imbalance, entropy, pairs) without <html> around
// them, to embed in other pages.
std::string routing_report_sections(const nlohmann::json& stats, const std::string& id_prefix = "");

// A whole page.
std::string routing_report_html(const nlohmann::json& stats);

Result<void> write_text_file(const std::string& path, const std::string& text);

}  // namespace moe
