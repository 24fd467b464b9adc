// Expert specialisation by domain: Jensen-Shannon divergence on hand-made counts with known
// values, the permutation test on hand-made routing, argument errors, and the CLI end to end.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "analysis/compare_result.h"
#include "analysis/domain_measure.h"
#include "analysis/domain_routing.h"
#include "analysis/routing_report.h"
#include "analysis/routing_stats.h"
#include "fixtures.h"
#include "subprocess.h"

namespace moe {
namespace {

TEST(JsDivergence, KnownValues) {
    const std::vector<double> a = {3, 1, 0, 4}, a2 = {6, 2, 0, 8};
    EXPECT_EQ(js_divergence_bits(a, a2), 0.0);  // identical after normalisation
    EXPECT_DOUBLE_EQ(
        js_divergence_bits(std::vector<double>{1, 1, 0, 0}, std::vector<double>{0, 0, 5, 5}), 1.0);
    // Half-overlapping: p = (1/2, 1/2, 0), q = (0, 1/2, 1/2), m = (1/4, 1/2, 1/4):
    // KL(p||m) = 1/2 log2 2 + 1/2 log2 1 = 1/2, the same for q, so JS = 1/2.
    EXPECT_NEAR(js_divergence_bits(std::vector<double>{1, 1, 0}, std::vector<double>{0, 1, 1}), 0.5,
                1e-15);
    // p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); JS = 1/2 log2(4/3) + 1/2 (1/2 log2(2/3) + 1/2
    // log2 2)
    const double want = 0.5 * std::log2(4.0 / 3.0) + 0.25 * std::log2(2.0 / 3.0) + 0.25;
    EXPECT_NEAR(js_divergence_bits(std::vector<double>{2, 0}, std::vector<double>{1, 1}), want,
                1e-15);
    EXPECT_EQ(js_divergence_bits(std::vector<double>{0, 0}, std::vector<double>{1, 1}), 0.0);
}

// Hand-made traces: one layer, k = 1, 4 experts.
RouterTrace trace_of(const std::vector<int32_t>& experts) {
    RouterTrace tr;
    tr.n_expert = 4;
    tr.n_expert_used = 1;
    tr.selected = experts;
    return tr;
}

TEST(DomainRouting, DisjointDomainsAreSignificantIdenticalAreNot) {
    DomainRouting dr(1, 4, 1, {"a", "b"});
    std::vector<int32_t> xa(40), xb(40);
    for (int i = 0; i < 40; ++i) xa[i] = i % 2, xb[i] = 2 + i % 2;  // experts {0,1} vs {2,3}
    ASSERT_TRUE(dr.add(0, trace_of(xa), 40, 0, 40));
    ASSERT_TRUE(dr.add(1, trace_of(xb), 40, 0, 40));
    const auto j = dr.analyse(199, 7);
    ASSERT_EQ(j["pairs"].size(), 1u);
    EXPECT_DOUBLE_EQ(j["pairs"][0]["js_mean"].get<double>(), 1.0);
    EXPECT_EQ(j["pairs"][0]["permutations_at_least"].get<int>(), 0);
    EXPECT_DOUBLE_EQ(j["pairs"][0]["p_value"].get<double>(), 1.0 / 200.0);  // the +1 correction
    EXPECT_EQ(j["tokens"], nlohmann::json({40, 40}));
    // The experts of a domain are its most over-represented ones, with their counts.
    const auto& top = j["over_represented"][0]["experts"][0];
    EXPECT_LT(top["expert"].get<int>(), 2);
    EXPECT_EQ(top["count"].get<double>(), 20.0);
    EXPECT_EQ(top["other_count"].get<double>(), 0.0);

    DomainRouting same(1, 4, 1, {"a", "b"});
    std::vector<int32_t> x(40);
    for (int i = 0; i < 40; ++i) x[i] = i % 4;
    ASSERT_TRUE(same.add(0, trace_of(x), 40, 0, 40));
    ASSERT_TRUE(same.add(1, trace_of(x), 40, 0, 40));
    const auto s = same.analyse(199, 7);
    EXPECT_EQ(s["pairs"][0]["js_mean"].get<double>(), 0.0);
    EXPECT_DOUBLE_EQ(s["pairs"][0]["p_value"].get<double>(), 1.0);  // every shuffle is >= 0
    // Fixed seed: the same analysis twice gives the same p-values.
    EXPECT_EQ(dr.analyse(99, 3)["pairs"], dr.analyse(99, 3)["pairs"]);
}

TEST(DomainRouting, RejectsTracesOfTheWrongShape) {
    DomainRouting dr(2, 4, 1, {"a", "b"});
    EXPECT_FALSE(dr.add(0, trace_of({0, 1, 2}), 3, 0, 3));  // 2 layers need 6 selections
    EXPECT_FALSE(dr.add(2, trace_of({0, 1, 2, 3, 0, 1}), 3, 0, 3));
}

TEST(DomainArgs, Errors) {
    EXPECT_TRUE(parse_domain_args({"law=a.txt", "poetry=b.txt"}));
    for (const auto& bad :
         std::vector<std::vector<std::string>>{{"law=a.txt"},                      // one domain
                                               {"law=a.txt", "law=b.txt"},         // duplicate name
                                               {"law", "poetry=b.txt"},            // no '='
                                               {"=a.txt", "poetry=b.txt"},         // empty name
                                               {"law=", "poetry=b.txt"},           // empty file
                                               {"la w=a.txt", "poetry=b.txt"}}) {  // bad character
        auto r = parse_domain_args(bad);
        EXPECT_FALSE(r) << bad[0];
        if (!r) {
            EXPECT_NE(r.message().find("--domain"), std::string::npos) << r.message();
        }
    }
    auto dup = parse_domain_args({"law=a.txt", "law=b.txt"});
    EXPECT_NE(dup.message().find("twice"), std::string::npos) << dup.message();
}

std::string write_tmp(const std::string& name, const std::string& text) {
    const std::string p = test::temp_path(name);
    std::ofstream(p) << text;
    return p;
}

TEST(RoutingStatsCli, DomainsEndToEnd) {
    const std::string src = MOE_SOURCE_DIR;
    const std::string out = test::temp_path("domains.json"), html = test::temp_path("domains.html");
    auto r =
        test::run_moeinfer("routing-stats -m " + src + "/models/demo-moe.gguf --domain law=" + src +
                           "/data/domain-argument.txt --domain vision=" + src +
                           "/data/domain-vision.txt -c 128 --windows 2 --permutations 50 -t 2 -o " +
                           out + " --html " + html);
    ASSERT_EQ(r.code, 0) << r.all();
    EXPECT_NE(r.out.find("law"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("p = "), std::string::npos) << r.out;
    auto stats = read_routing_stats(out);
    ASSERT_TRUE(stats) << stats.message();
    const auto& d = (*stats)["domains"];
    EXPECT_EQ(d["tokens"], nlohmann::json({2 * 127, 2 * 127}));  // BOS positions left out
    const double js = d["pairs"][0]["js_mean"].get<double>();
    EXPECT_GT(js, 0.0);
    EXPECT_LT(js, 1.0);
    const double p = d["pairs"][0]["p_value"].get<double>();
    EXPECT_GE(p, 1.0 / 51.0);
    EXPECT_LE(p, 1.0);
    std::ifstream f(html);
    const std::string page((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_NE(page.find("Expert specialisation by domain"), std::string::npos);
    // routing-report renders the same section from the file.
    r = test::run_moeinfer("routing-report " + out + " -o " + html);
    ASSERT_EQ(r.code, 0) << r.all();
}

TEST(RoutingStatsCli, BadInputIsOneClearError) {
    const std::string src = MOE_SOURCE_DIR;
    const std::string m = src + "/models/demo-moe.gguf", ok = src + "/data/domain-wisdom.txt";
    const std::string empty = write_tmp("dom-empty.txt", ""),
                      shrt = write_tmp("dom-short.txt", "And it came to pass.");
    struct Case {
        std::string args, says;
    };
    for (const Case& c : std::vector<Case>{
             {"routing-stats -m " + m + " --domain a=" + empty + " --domain b=" + ok, "empty"},
             {"routing-stats -m " + m + " --domain a=" + shrt + " --domain b=" + ok,
              "fewer than one window"},
             {"routing-stats -m " + m + " --domain a=" + ok + " --domain a=" + ok, "twice"},
             {"routing-stats -m " + m + " --domain a=" + ok, "at least two"},
             {"routing-stats -m " + m + " --domain a=/nonexistent.txt --domain b=" + ok,
              "nonexistent"},
             {"routing-stats -m " + src + "/models/demo-dense.gguf --domain a=" + ok +
                  " --domain b=" + ok,
              "dense"},
             {"routing-stats -m " + m + " --top-k 9 --domain a=" + ok + " --domain b=" + ok,
              "[1, 8]"}}) {
        const auto r = test::run_moeinfer(c.args + " -o " + test::temp_path("bad.json"));
        test::expect_one_error_line(r, c.args);
        EXPECT_NE(r.all().find(c.says), std::string::npos) << c.args << "\n" << r.all();
    }
}

// compare's child hands the optional sections to the parent as JSON: they must survive it.
TEST(CompareSections, SweepAndDomainsSurviveTheJsonRoundTrip) {
    ModelMeasures m;
    m.top_k_sweep = {{"native_k", 2}, {"rows", nlohmann::json::array()}};
    m.domains = {{"domains", {{"names", {"a", "b"}}}}};
    m.top_k_sweep_note = "the dense model has no routing to sweep";
    m.domains_note = "no domains";
    auto back = measures_from_json(to_json(m));
    ASSERT_TRUE(back) << back.message();
    EXPECT_EQ(back->top_k_sweep, m.top_k_sweep);
    EXPECT_EQ(back->domains, m.domains);
    EXPECT_EQ(back->top_k_sweep_note, m.top_k_sweep_note);
    EXPECT_EQ(back->domains_note, m.domains_note);
}

}  // namespace
}  // namespace moe
