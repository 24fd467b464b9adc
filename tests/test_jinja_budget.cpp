// Hostile chat templates: each case once killed the process (SIGFPE), grew memory without bound
// or wrapped an integer. Every one must now end in a render error naming the problem, within
// the render budget, while ordinary templates still render.
#include <gtest/gtest.h>

#include <string>

#include "chat/jinja.h"

using moe::jinja::RenderLimits;
using moe::jinja::Template;
using moe::jinja::Value;

namespace {

// Small limits so that each case fails fast; the defaults are tested separately.
RenderLimits small_limits() {
    RenderLimits l;
    l.max_output = 1 << 20;
    l.max_value = 1 << 20;
    l.max_alloc = 64 << 20;
    l.max_steps = 2'000'000;
    l.max_depth = 400;
    return l;
}

// The render's error message, or "" when it rendered.
std::string error_of(const std::string& src, const RenderLimits& limits = small_limits()) {
    auto t = Template::parse(src);
    if (!t) return t.message();
    auto r = t->render(Value::object(), limits);
    return r ? std::string() : r.message();
}

std::string rendered(const std::string& src) {
    auto t = Template::parse(src);
    if (!t) return "parse error: " + t.message();
    auto r = t->render(Value::object(), small_limits());
    return r ? *r : "render error: " + r.message();
}

TEST(JinjaBudget, Int64MinDividedByMinusOneIsAnError) {
    // INT64_MIN built without a literal that overflows the lexer.
    const std::string min = "(-9223372036854775807 - 1)";
    EXPECT_NE(error_of("{{ " + min + " // -1 }}").find("integer overflow"), std::string::npos);
    EXPECT_EQ(rendered("{{ " + min + " % -1 }}"), "0");
    EXPECT_EQ(rendered("{{ -7 // 2 }} {{ -7 % 2 }} {{ 7 // -2 }} {{ 7 % -2 }}"), "-4 1 -4 -1");
}

TEST(JinjaBudget, IntegerOverflowIsAnError) {
    EXPECT_NE(error_of("{{ 9223372036854775807 + 1 }}").find("integer overflow"),
              std::string::npos);
    EXPECT_NE(error_of("{{ (-9223372036854775807 - 1) - 1 }}").find("integer overflow"),
              std::string::npos);
    EXPECT_NE(error_of("{{ 4294967296 * 4294967296 }}").find("integer overflow"),
              std::string::npos);
    EXPECT_NE(error_of("{{ -(-9223372036854775807 - 1) }}").find("integer overflow"),
              std::string::npos);
    EXPECT_NE(error_of("{{ 3 ** 64 }}").find("integer overflow"), std::string::npos);
    EXPECT_NE(error_of("{{ (-9223372036854775807 - 1) | abs }}").find("integer overflow"),
              std::string::npos);
    EXPECT_NE(error_of("{{ [9223372036854775807, 1] | sum }}").find("integer overflow"),
              std::string::npos);
    EXPECT_EQ(rendered("{{ 2 ** 62 }} {{ (-1) ** 101 }} {{ 0 ** 0 }} {{ 1 ** 1000000000 }}"),
              "4611686018427387904 -1 1 1");
}

TEST(JinjaBudget, StringRepetitionSizeCheckDoesNotWrap) {
    // 4 bytes x 2^62 wraps to 0 in 64-bit size arithmetic: the old check let it through.
    EXPECT_NE(error_of("{{ 'abcd' * 4611686018427387904 }}").find("repetition"), std::string::npos);
    EXPECT_NE(error_of("{{ 'x' * 2000000 }}").find("repetition"), std::string::npos);
    EXPECT_EQ(rendered("{{ 'ab' * 3 }}{{ 'x' * -2 }}"), "ababab");
}

TEST(JinjaBudget, GrowthThroughConcatenationLoopsAndMacrosIsBounded) {
    // Doubling a string through a namespace: 2^40 bytes unless a limit stops it.
    const std::string doubling =
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s | length }}";
    EXPECT_NE(error_of(doubling).find("string concatenation"), std::string::npos);
    const std::string plus =
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}";
    EXPECT_NE(error_of(plus).find("string concatenation"), std::string::npos);
    const std::string lists =
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}"
        "{% endfor %}";
    EXPECT_NE(error_of(lists).find("list concatenation"), std::string::npos);
    // Many medium strings: each under the value limit, together over the allocation budget.
    const std::string many =
        "{% set ns = namespace(s='y' * 500000) %}{% for i in range(100000) %}"
        "{% set t = ns.s ~ i %}{% endfor %}";
    EXPECT_NE(error_of(many).find("allocates more than"), std::string::npos);
    const std::string macros =
        "{% macro m(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s='z') %}"
        "{% for i in range(40) %}{% set ns.s = m(ns.s) %}{% endfor %}";
    EXPECT_NE(error_of(macros), "");
    EXPECT_NE(error_of("{% for i in range(200000) %}{{ 'abcdefgh' }}{% endfor %}")
                  .find("rendered text over the limit"),
              std::string::npos);
}

TEST(JinjaBudget, RangeWithExtremeBoundsOrStepsIsAnError) {
    EXPECT_NE(error_of("{{ range(-9223372036854775807, 9223372036854775807) | length }}")
                  .find("too large"),
              std::string::npos);
    EXPECT_NE(error_of("{{ range(9223372036854775807, -9223372036854775807, -1) | length }}")
                  .find("too large"),
              std::string::npos);
    // A step so large that start + step overflows: one element.
    EXPECT_EQ(rendered("{{ range(0, 9223372036854775807, 9223372036854775807) | list }}"), "[0]");
    EXPECT_EQ(rendered("{{ range(5, -9223372036854775807, -9223372036854775807) | list }}"),
              "[5, -9223372036854775802]");
    // Elements whose offset from start does not fit an int64 (start + k * step is computed
    // modulo 2^64 and lands in range).
    EXPECT_EQ(
        rendered(
            "{{ range(9223372036854775807, -9223372036854775807, -4611686018427387904) | list }}"),
        "[9223372036854775807, 4611686018427387903, -1, -4611686018427387905]");
    EXPECT_EQ(rendered("{{ range(10, 0, -3) | list }}"), "[10, 7, 4, 1]");
    EXPECT_EQ(
        rendered(
            "{{ [1, 2, 3, 4][::9223372036854775807] }}{{ [1, 2, 3][::-9223372036854775807] }}"),
        "[1][3]");
}

TEST(JinjaBudget, CenterAndIndentWidthsAreBounded) {
    EXPECT_NE(error_of("{{ 'a' | center(9223372036854775807) }}").find("center"),
              std::string::npos);
    EXPECT_NE(error_of("{{ 'a' | indent(9223372036854775807) }}").find("indent"),
              std::string::npos);
    EXPECT_NE(error_of("{{ 'a\nb' | indent(900000, true) | indent(900000, true) }}").find("indent"),
              std::string::npos);
    EXPECT_NE(error_of("{{ [[1]] | tojson(indent=9223372036854775807) }}").find("tojson"),
              std::string::npos);
    EXPECT_EQ(rendered("[{{ 'ab' | center(6) }}]"), "[  ab  ]");
    EXPECT_EQ(rendered("{{ 'a\nb' | indent(2) }}"), "a\n  b");
}

TEST(JinjaBudget, ReplaceJoinAndSplitGrowthIsBounded) {
    EXPECT_NE(error_of("{{ ('x' * 2000) | replace('', 'y' * 1000) }}").find("replace"),
              std::string::npos);
    EXPECT_NE(error_of("{{ range(100000) | join('z' * 100) }}").find("join"), std::string::npos);
    EXPECT_NE(error_of("{% set s = ' a' * 500000 %}{{ s.split() | length }}").find("split"),
              std::string::npos);
}

TEST(JinjaBudget, StepsAndRecursionAreBounded) {
    RenderLimits no_alloc_limit = small_limits();
    no_alloc_limit.max_alloc = uint64_t(1) << 40;
    EXPECT_NE(
        error_of("{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}",
                 no_alloc_limit)
            .find("steps"),
        std::string::npos);
    EXPECT_NE(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("recursion"),
              std::string::npos);
    // unique compares each element with those kept: quadratic, so it counts steps.
    EXPECT_NE(
        error_of("{% set x = range(20000) | list %}{{ (x | unique | length) }}").find("steps"),
        std::string::npos);
}

TEST(JinjaBudget, NamespaceCannotHoldItself) {
    EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.a = ns %}{{ ns }}").find("namespace"),
              std::string::npos);
    EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.a = [dict(b=ns)] %}").find("namespace"),
              std::string::npos);
    EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.f = 'x'.upper %}").find("namespace"),
              std::string::npos);
    EXPECT_EQ(rendered("{% set ns = namespace(a=1) %}{% set ns.b = [ns.a, {'k': 2}] %}{{ ns.b }}"),
              "[1, {'k': 2}]");
}

TEST(JinjaBudget, FloatToIntOutsideTheRangeIsAnError) {
    EXPECT_NE(error_of("{{ 1e300 | int }}").find("does not fit"), std::string::npos);
    EXPECT_EQ(rendered("{{ '1e300' | int }} {{ 'nan' | int(5) }}"), "0 5");
    EXPECT_EQ(rendered("{{ 2.9 | int }} {{ '-3' | int }} {{ '99999999999999999999' | int(7) }}"),
              "2 -3 7");
}

TEST(JinjaBudget, DefaultLimitsRenderALongConversationAndStopAHostileOne) {
    // 2000 turns of 2 KB: ~4 MB of text, the kind of history a real chat reaches.
    std::string msgs = "[";
    for (int k = 0; k < 2000; ++k)
        msgs += std::string(k ? "," : "") + R"({"role":"user","content":")" +
                std::string(2000, 'a') + "\"}";
    msgs += "]";
    auto t = Template::parse(
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}{% endfor %}");
    ASSERT_TRUE(t) << t.message();
    auto ctx = moe::jinja::from_json(nlohmann::ordered_json::parse("{\"messages\": " + msgs + "}"));
    auto r = t->render(ctx);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->size(), 2000u * (8 + 2000));
    EXPECT_NE(
        error_of(
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}",
            RenderLimits{}),
        "");
}

}  // namespace
