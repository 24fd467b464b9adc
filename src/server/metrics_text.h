// GET /metrics: the schedulers' counters in the Prometheus text exposition format (HELP and
// TYPE lines, names prefixed moeinfer_, one sample per served model with a model label).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "runtime/scheduler.h"

namespace moe::server {

struct ServerCounters {
    int64_t http_requests = 0;  // every request the server answered
    int64_t http_errors = 0;    // answered with status >= 400
    int64_t rejected_queue_full = 0;
};

std::string metrics_text(const std::vector<std::pair<std::string, SchedulerMetrics>>& models,
                         const ServerCounters& server);

}  // namespace moe::server
