// The render budget: one active set of counters per thread, installed by BudgetScope.
#include "chat/jinja_budget.h"

#include <fmt/format.h>

#include "chat/jinja_value.h"

namespace moe::jinja {
namespace {

struct Counters {
    RenderLimits limits;
    uint64_t allocated = 0;
    uint64_t steps = 0;
    int depth = 0;
};

thread_local Counters* t_active = nullptr;
thread_local Counters t_default;  // outside a render: limits apply, sums never reset

Counters& counters() {
    return t_active ? *t_active : t_default;
}

}  // namespace

BudgetScope::BudgetScope(const RenderLimits& limits) {
    t_active = new Counters{limits};
}
BudgetScope::~BudgetScope() {
    delete t_active;
    t_active = nullptr;
}

const RenderLimits& budget_limits() {
    return counters().limits;
}

void budget_check_size(uint64_t bytes, const char* what) {
    const Counters& c = counters();
    if (bytes > c.limits.max_value)
        throw JinjaError(fmt::format("{} would be {} bytes, over the template limit of {} bytes",
                                     what, bytes, c.limits.max_value));
}

void budget_charge(uint64_t bytes) {
    Counters& c = counters();
    if (!t_active) return;  // sums are per render
    c.allocated += bytes;
    if (c.allocated > c.limits.max_alloc)
        throw JinjaError(
            fmt::format("template allocates more than {} bytes of values", c.limits.max_alloc));
}

void budget_steps(uint64_t n) {
    Counters& c = counters();
    if (!t_active) return;
    c.steps += n;
    if (c.steps > c.limits.max_steps)
        throw JinjaError(fmt::format("template takes more than {} steps", c.limits.max_steps));
}

DepthGuard::DepthGuard() {
    Counters& c = counters();
    if (++c.depth > c.limits.max_depth) {
        --c.depth;
        throw JinjaError(fmt::format("template recursion deeper than {}", c.limits.max_depth));
    }
}
DepthGuard::~DepthGuard() {
    --counters().depth;
}

int64_t checked_add(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        throw JinjaError(fmt::format("integer overflow: {} + {}", a, b));
    return r;
}
int64_t checked_sub(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        throw JinjaError(fmt::format("integer overflow: {} - {}", a, b));
    return r;
}
int64_t checked_mul(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        throw JinjaError(fmt::format("integer overflow: {} * {}", a, b));
    return r;
}
int64_t checked_neg(int64_t a) {
    return checked_sub(0, a);
}

int64_t floor_div(int64_t a, int64_t b) {
    // INT64_MIN / -1 is the one quotient that does not fit (and traps on x86).
    if (b == -1) return checked_neg(a);
    int64_t q = a / b;
    if (a % b != 0 && ((a % b < 0) != (b < 0))) --q;
    return q;
}
int64_t floor_mod(int64_t a, int64_t b) {
    if (b == -1) return 0;
    int64_t m = a % b;
    if (m != 0 && ((m < 0) != (b < 0))) m += b;
    return m;
}

}  // namespace moe::jinja
