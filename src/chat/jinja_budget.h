// The render budget of the Jinja interpreter: caps on output size, size of any one value, bytes
// of values created, evaluation steps and recursion depth, plus overflow-checked integer
// arithmetic. Chat templates come inside model files from strangers: a hostile one must end in
// a render error, never in SIGFPE, bad_alloc, a stack overflow or a hang.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moe::jinja {

struct RenderLimits {
    size_t max_output = size_t(32) << 20;    // bytes of rendered text (also of any {% set %} block)
    size_t max_value = size_t(32) << 20;     // bytes of any one string or list
    uint64_t max_alloc = uint64_t(1) << 30;  // bytes of values created in one render, summed
    uint64_t max_steps = 10'000'000;         // expressions + loop iterations + macro calls
    int max_depth = 400;                     // nested statements, expressions and macro calls
};

// Makes `limits` the budget of this thread's render until destroyed (renders do not nest).
class BudgetScope {
  public:
    explicit BudgetScope(const RenderLimits& limits);
    ~BudgetScope();
    BudgetScope(const BudgetScope&) = delete;
    BudgetScope& operator=(const BudgetScope&) = delete;
};

// Each throws JinjaError when the active budget (or the default limits outside a render) is
// exceeded.
void budget_charge(uint64_t bytes);                        // a value of `bytes` was created
void budget_check_size(uint64_t bytes, const char* what);  // a value is about to grow to `bytes`
void budget_steps(uint64_t n = 1);
const RenderLimits& budget_limits();

// Counts one level of recursion for as long as it lives.
class DepthGuard {
  public:
    DepthGuard();
    ~DepthGuard();
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
};

// Python-like int64 arithmetic that reports overflow instead of wrapping or trapping.
int64_t checked_add(int64_t a, int64_t b);
int64_t checked_sub(int64_t a, int64_t b);
int64_t checked_mul(int64_t a, int64_t b);
int64_t checked_neg(int64_t a);
// Floor division and modulo with Python signs; b != 0 is the caller's check.
int64_t floor_div(int64_t a, int64_t b);
int64_t floor_mod(int64_t a, int64_t b);

}  // namespace moe::jinja
