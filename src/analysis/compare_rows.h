// What both compare reports show, as text: the rows of the measures table and the lines of one
// answer.
#pragma once

#include <string>
#include <vector>

#include "analysis/compare_result.h"

namespace moe {

// One row of the measures table: label, both values as text, which is better (-1 none, 0 a, 1 b).
struct CompareRow {
    std::string label, va, vb;
    int better = -1;
};
std::vector<CompareRow> measure_rows(const ModelMeasures& a, const ModelMeasures& b);

std::string prompt_timing(const PromptRun& p);
std::string failures_text(const PromptRun& p);

}  // namespace moe
