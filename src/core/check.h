// MOE_CHECK: invariants (programmer errors). Never used for user input, which gets Result.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#define MOE_CHECK(cond, ...)                                                        \
    do {                                                                            \
        if (!(cond)) {                                                              \
            std::fprintf(stderr, "%s:%d: check failed: %s: %s\n", __FILE__, __LINE__, \
                         #cond, fmt::format(__VA_ARGS__).c_str());                  \
            std::abort();                                                           \
        }                                                                           \
    } while (0)
