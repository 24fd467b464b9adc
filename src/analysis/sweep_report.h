// HTML of a top-k sweep (the JSON of analysis/topk_sweep.h): the table, two plots (tok/s vs
// active parameters per token, perplexity vs k, the native k marked) and the summary sentence.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace moe {

// The section without <html> around it (compare embeds it).
std::string sweep_report_section(const nlohmann::json& sweep, const std::string& title);
// A whole page.
std::string sweep_report_html(const nlohmann::json& sweep, const std::string& title);

}  // namespace moe
