// `moeinfer routing-report STATS.json -o report.html`: renders the routing statistics written by
// `run --routing-stats` as a self-contained HTML page (inline CSS and SVG, nothing fetched).
#include <memory>

#include "analysis/routing_report.h"
#include "analysis/routing_stats.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace moe::cli {
namespace {

struct RoutingReportArgs {
    std::string input, output = "routing-report.html";
};

int run_routing_report(const RoutingReportArgs& a) {
    auto stats = read_routing_stats(a.input);
    if (!stats) return report(stats.message());
    std::string html;
    try {
        html = routing_report_html(*stats);
    } catch (const nlohmann::json::exception& e) {  // a field of the wrong type
        return report(fmt::format("'{}': malformed routing statistics ({})", a.input, e.what()));
    }
    if (auto w = write_text_file(a.output, html); !w) return report(w.message());
    fmt::print(stderr, "wrote {}\n", a.output);
    return 0;
}

}  // namespace

void register_routing_report_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<RoutingReportArgs>();
    auto* cmd = app.add_subcommand("routing-report", "render routing statistics (JSON) as HTML");
    cmd->add_option("stats", a->input, "statistics written by `run --routing-stats`")->required();
    cmd->add_option("-o,--output", a->output, "HTML file to write (default: routing-report.html)");
    cmd->callback([a, &exit_code] { exit_code = run_routing_report(*a); });
}

}  // namespace moe::cli
