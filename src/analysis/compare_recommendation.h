// The recommendation paragraph of `compare`, computed from the measures: speed, speed per active
// parameter, quality (perplexity, or bits per byte across vocabularies) with its significance,
// memory, failures, and a verdict.
#pragma once

#include <cstdint>
#include <string>

#include "analysis/compare_result.h"

namespace moe {

// mem_available: bytes of host memory available (0: unknown).
std::string compare_recommendation(const ModelMeasures& a, const ModelMeasures& b,
                                   uint64_t mem_available);

}  // namespace moe
