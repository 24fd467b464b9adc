// Weight bytes a forward pass reads, for the serving metrics: the experts' bytes depend on how
// many distinct experts a step touches, everything else is read once per step.
#pragma once

#include <vector>

#include "models/model.h"

namespace moe {

struct WeightTraffic {
    std::vector<double> expert_bytes;  // [n_moe_layers]: gate + up + down of one routed expert
    double dense_bytes = 0;            // all other matrices (attention, router, shared, output)
};

WeightTraffic weight_traffic(const Model& m);

}  // namespace moe
