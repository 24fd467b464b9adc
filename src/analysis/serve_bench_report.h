// bench-serve's output: a llama-bench-like Markdown table and the JSON form of the same figures.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "analysis/serve_bench.h"

namespace moe {

std::string serve_bench_table(const ServeBenchResult& r);
nlohmann::ordered_json serve_bench_json(const ServeBenchResult& r, const ServeBenchOptions& opt);

}  // namespace moe
