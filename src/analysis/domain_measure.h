// Measures routing per domain text (`routing-stats --domain`, `compare`): each text is
// tokenized as `eval` does and cut into disjoint windows of n_ctx tokens, each evaluated from an
// empty cache; every position but the first (BOS, the same in every window) is recorded. The
// result is a routing-stats JSON (RoutingStats over all domains) with a "domains" section
// (analysis/domain_routing.h).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"
#include "models/kv_layout.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace moe {

struct DomainText {
    std::string name, file;
};

struct DomainOptions {
    int n_ctx = 256;
    int max_windows = 0;  // per domain; 0: all
    int n_permutations = 1000;
    uint64_t seed = 1;
    int n_threads = 0;
    KvTypes kv_types;  // --cache-type-k / --cache-type-v
};

// "NAME=FILE" arguments: names of letters, digits, '-', '_' (at most 32), distinct, at least two.
Result<std::vector<DomainText>> parse_domain_args(const std::vector<std::string>& args);

Result<nlohmann::json> measure_domains(const Model& m, const Tokenizer& tok,
                                       const std::vector<DomainText>& domains,
                                       const DomainOptions& opt);

// The domains section as plain text (pairs, p-values, top over-represented experts).
std::string domains_text(const nlohmann::json& stats);

}  // namespace moe
