// The reports of `compare`: Markdown (compare_markdown.cpp) and a self-contained HTML page with
// inline SVG charts (compare_html.cpp), both holding the measures table, the recommendation and
// every answer.
#pragma once

#include <cstdint>
#include <string>

#include "analysis/compare_measure.h"
#include "analysis/compare_result.h"

namespace moe {

// mem_available: bytes of host memory available (0: unknown).
std::string compare_markdown(const ModelMeasures& a, const ModelMeasures& b,
                             const CompareOptions& o, uint64_t mem_available);
std::string compare_html(const ModelMeasures& a, const ModelMeasures& b, const CompareOptions& o,
                         uint64_t mem_available);

}  // namespace moe
