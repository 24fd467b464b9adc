// An inline SVG line chart (x-y series with point markers), for the serving section of the
// compare report.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace moe {

struct LineSeries {
    std::string name, color;
    std::vector<std::pair<double, double>> points;  // (x, y), drawn in x order
    bool dashed = false;                            // predictions; measured series are solid
    bool markers = true;
    double width = 2.5;  // stroke width
};

struct LineChartOptions {
    std::string title, x_label, y_label;
    int width = 420, height = 280;
    int digits = 1;  // tick labels of the y axis
};

std::string line_chart_svg(const std::vector<LineSeries>& series, const LineChartOptions& o);

}  // namespace moe
