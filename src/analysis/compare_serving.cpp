// compare --serve: measure_serving (a ServeChild + run_serve_bench) and the report sections.
#include "analysis/compare_serving.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "analysis/line_chart.h"
#include "analysis/routing_report.h"
#include "analysis/serve_child.h"

namespace moe {
namespace {

const char* kColorA = "#2c7fb8";
const char* kColorB = "#f28e2b";
const char* kColorUniform = "#1b9e77";
const char* kColorRouted = "#e7298a";

// The bytes one routed expert of one layer costs and the bytes read once per step, derived from
// a level of our server's counters (the level with the largest decode batch).
struct StepCost {
    bool ok = false;
    double expert_bytes = 0;  // one expert of one MoE layer
    double dense_bytes = 0;   // per step
};

StepCost step_cost(const ModelMeasures& m, const ServingRun& r) {
    StepCost c;
    const LevelResult* best = nullptr;
    for (const auto& L : r.bench.levels)
        if (L.decode_batch && L.weight_bytes_per_token && L.expert_bytes_per_token &&
            L.experts_per_layer && (!best || *L.decode_batch > *best->decode_batch))
            best = &L;
    if (!best) return c;
    const double B = *best->decode_batch;
    c.dense_bytes = (*best->weight_bytes_per_token - *best->expert_bytes_per_token) * B;
    if (m.n_moe_layers > 0 && *best->experts_per_layer > 0)
        c.expert_bytes =
            *best->expert_bytes_per_token * B / (*best->experts_per_layer * m.n_moe_layers);
    c.ok = true;
    return c;
}

double predicted_bytes_per_token(const ModelMeasures& m, const StepCost& c, double experts,
                                 double B) {
    return (c.dense_bytes + double(m.n_moe_layers) * experts * c.expert_bytes) / B;
}

const LevelResult* level_at(const ServingRun& r, bool last) {
    if (r.bench.levels.empty()) return nullptr;
    return last ? &r.bench.levels.back() : &r.bench.levels.front();
}

std::string fmt_s(double s) {
    return s >= 1 ? fmt::format("{:.2f} s", s) : fmt::format("{:.0f} ms", s * 1e3);
}

std::string opt_num(const std::optional<double>& v, double scale, int digits) {
    return v ? fmt::format("{:.{}f}", *v * scale, digits) : "-";
}

}  // namespace

ServingRun measure_serving(const std::string& model_path, const ServingOptions& o) {
    ServingRun r;
    const int slots = *std::max_element(o.concurrency.begin(), o.concurrency.end());
    std::vector<std::string> args = {"-m", model_path, "--parallel", std::to_string(slots)};
    if (o.threads > 0) args.insert(args.end(), {"-t", std::to_string(o.threads)});
    auto child = ServeChild::start(args);
    if (!child) {
        r.error = child.message();
        return r;
    }
    ServeBenchOptions b;
    b.url = ServerUrl{"127.0.0.1", (*child)->port(), ""};
    b.concurrency = o.concurrency;
    b.requests_per_client = o.requests_per_client;
    b.prompt_words = o.prompt_words;
    b.max_tokens = o.max_tokens;
    auto res = run_serve_bench(b);
    if (!res)
        r.error = res.message();
    else
        r.bench = std::move(*res);
    return r;
}

double uniform_experts_touched(int n_expert, int k, double B) {
    if (n_expert <= 0) return 0;
    return n_expert * (1 - std::pow(1 - double(k) / n_expert, B));
}

double routed_experts_touched(const nlohmann::json& routing, double B) {
    if (!routing.is_object() || !routing.contains("layers") || !routing["layers"].is_array())
        return NAN;
    const int k = routing.contains("model") && routing["model"].is_object()
                      ? routing["model"].value("n_expert_used", 0)
                      : 0;
    double sum = 0;
    int layers = 0;
    for (const auto& L : routing["layers"]) {
        if (!L.contains("counts") || !L["counts"].is_array()) continue;
        double total = 0;
        for (const auto& c : L["counts"]) total += c.get<double>();
        if (total <= 0) continue;
        // counts sum to tokens x k: a token picks expert e with probability k * count / total.
        const double kk = k > 0 ? k : 1;
        double touched = 0;
        for (const auto& c : L["counts"]) {
            const double p = std::min(1.0, kk * c.get<double>() / total);
            touched += 1 - std::pow(1 - p, B);
        }
        sum += touched;
        ++layers;
    }
    return layers > 0 ? sum / layers : NAN;
}

std::string serving_paragraph(const ModelMeasures& a, const ServingRun& sa, const ModelMeasures& b,
                              const ServingRun& sb) {
    const ModelNames n = short_names(a, b);
    std::string p;
    const ModelMeasures* ms[2] = {&a, &b};
    const ServingRun* rs[2] = {&sa, &sb};
    const std::string names[2] = {n.a, n.b};
    for (int i = 0; i < 2; ++i) {
        const LevelResult* lo = level_at(*rs[i], false);
        const LevelResult* hi = level_at(*rs[i], true);
        if (!rs[i]->error.empty() || !lo || !hi) {
            p += fmt::format("{} could not be served ({}). ", names[i], rs[i]->error);
            continue;
        }
        p += fmt::format(
            "{} generates {:.1f} tok/s for one client and {:.1f} tok/s for {} ({:.1f}x), with "
            "the median first token after {} at {} clients. ",
            names[i], lo->output_tok_s, hi->output_tok_s, hi->concurrency,
            lo->output_tok_s > 0 ? hi->output_tok_s / lo->output_tok_s : 0.0, fmt_s(hi->ttft_p50_s),
            hi->concurrency);
        if (ms[i]->n_moe_layers > 0 && hi->experts_per_layer && hi->decode_batch &&
            lo->weight_bytes_per_token && hi->weight_bytes_per_token) {
            p += fmt::format(
                "Its decode steps over {:.1f} sequences touch {:.1f} of {} experts per layer "
                "(uniform routing predicts {:.1f}), so the weight bytes per generated token fall "
                "only from {} to {} ({:.1f}x less): the experts other sequences need are read "
                "too. ",
                *hi->decode_batch, *hi->experts_per_layer, ms[i]->n_expert,
                uniform_experts_touched(ms[i]->n_expert, ms[i]->n_expert_used, *hi->decode_batch),
                human_bytes(*lo->weight_bytes_per_token), human_bytes(*hi->weight_bytes_per_token),
                *lo->weight_bytes_per_token / *hi->weight_bytes_per_token);
        } else if (lo->weight_bytes_per_token && hi->weight_bytes_per_token && hi->decode_batch) {
            p += fmt::format(
                "Being dense, it reads the same weights for every step, so its bytes per "
                "generated token fall with the batch from {} to {} ({:.1f}x less at {:.1f} "
                "sequences per step). ",
                human_bytes(*lo->weight_bytes_per_token), human_bytes(*hi->weight_bytes_per_token),
                *lo->weight_bytes_per_token / *hi->weight_bytes_per_token, *hi->decode_batch);
        }
    }
    const LevelResult *a1 = level_at(sa, false), *b1 = level_at(sb, false);
    const LevelResult *an = level_at(sa, true), *bn = level_at(sb, true);
    if (sa.error.empty() && sb.error.empty() && a1 && b1 && an && bn && b1->output_tok_s > 0 &&
        bn->output_tok_s > 0) {
        const double r1 = a1->output_tok_s / b1->output_tok_s;
        const double rn = an->output_tok_s / bn->output_tok_s;
        p += fmt::format(
            "For a server: {} is {:.2f}x the throughput of {} for one client and {:.2f}x at {} "
            "clients; ",
            n.a, r1, n.b, rn, an->concurrency);
        const std::string hi_c = std::to_string(an->concurrency);
        if (r1 >= 1 && rn >= 1)
            p += fmt::format("{} is the faster server at every measured load{}.", n.a,
                             rn < r1 ? ", though its lead shrinks as batching spreads the other "
                                       "model's weight reads over more sequences"
                                     : "");
        else if (r1 < 1 && rn < 1)
            p += fmt::format("{} is the faster server at every measured load{}.", n.b,
                             rn > r1 ? ", though its lead shrinks with concurrency" : "");
        else if (r1 >= 1)
            p += fmt::format(
                "{} is faster for few clients and {} by {} clients: choose by the "
                "load you expect.",
                n.a, n.b, hi_c);
        else
            p += fmt::format(
                "{} is faster for few clients and {} by {} clients: choose by the load you "
                "expect.",
                n.b, n.a, hi_c);
    }
    return p;
}

std::string serving_markdown(const ModelMeasures& a, const ServingRun& sa, const ModelMeasures& b,
                             const ServingRun& sb) {
    const ModelNames n = short_names(a, b);
    std::string md = "\n## Serving\n\n";
    md += serving_paragraph(a, sa, b, sb) + "\n\n";
    const ModelMeasures* ms[2] = {&a, &b};
    const ServingRun* rs[2] = {&sa, &sb};
    const std::string names[2] = {n.a, n.b};
    for (int i = 0; i < 2; ++i) {
        md += fmt::format("### {}\n\n", names[i]);
        if (!rs[i]->error.empty()) {
            md += "not measured: " + rs[i]->error + "\n\n";
            continue;
        }
        md +=
            "| concurrency | requests | failed | output tok/s | req/s | TTFT p50 | TTFT p99 | "
            "ITL p50 | ITL p99 | decode batch | experts/layer/step | uniform prediction | "
            "routed prediction | weight MB/token |\n"
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
            "---: | ---: |\n";
        for (const auto& L : rs[i]->bench.levels) {
            std::string uni = "-", routed = "-";
            if (ms[i]->n_moe_layers > 0 && L.decode_batch) {
                uni = fmt::format("{:.2f}",
                                  uniform_experts_touched(ms[i]->n_expert, ms[i]->n_expert_used,
                                                          *L.decode_batch));
                const double r = routed_experts_touched(ms[i]->routing, *L.decode_batch);
                if (std::isfinite(r)) routed = fmt::format("{:.2f}", r);
            }
            md += fmt::format(
                "| {} | {} | {} | {:.2f} | {:.3f} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                L.concurrency, L.requests, L.failures, L.output_tok_s, L.req_s, fmt_s(L.ttft_p50_s),
                fmt_s(L.ttft_p99_s), fmt_s(L.itl_p50_s), fmt_s(L.itl_p99_s),
                opt_num(L.decode_batch, 1, 2),
                ms[i]->n_moe_layers > 0 ? opt_num(L.experts_per_layer, 1, 2) : "-", uni, routed,
                opt_num(L.weight_bytes_per_token, 1e-6, 3));
        }
        md += "\n";
    }
    md +=
        "Streaming /v1/completions with unique prompts of random common words and "
        "`ignore_eos`, each model behind its own `moeinfer serve`; tokens from the responses' "
        "usage. Experts per layer and weight bytes per token are the server's counters over the "
        "decode steps of each level (decode batch: generated tokens per such step); the "
        "predictions evaluate E(1-(1-k/E)^B) (uniform) and sum_e 1-(1-p_e)^B (p_e: each "
        "expert's share of the routing measured above) at that mean batch.\n";
    return md;
}

std::string serving_html(const ModelMeasures& a, const ServingRun& sa, const ModelMeasures& b,
                         const ServingRun& sb) {
    const ModelNames n = short_names(a, b);
    std::string h = "<h2>Serving</h2>\n<p>" + html_escape(serving_paragraph(a, sa, b, sb)) +
                    "</p>\n<div class=\"charts\">\n";
    auto per_level = [](const ServingRun& r, auto f) {
        std::vector<std::pair<double, double>> pts;
        for (const auto& L : r.bench.levels) pts.emplace_back(double(L.concurrency), f(L));
        return pts;
    };
    auto chart = [&](const std::string& title, const std::string& unit, auto f, int digits) {
        LineChartOptions o;
        o.title = title;
        o.x_label = "concurrent clients";
        o.y_label = unit;
        o.digits = digits;
        return "<div class=\"chart\">" +
               line_chart_svg({{n.a, kColorA, per_level(sa, f)}, {n.b, kColorB, per_level(sb, f)}},
                              o) +
               "</div>\n";
    };
    h += chart(
        "Throughput", "output tok/s", [](const LevelResult& L) { return L.output_tok_s; }, 0);
    h += chart(
        "Time to first token (p50)", "ms", [](const LevelResult& L) { return L.ttft_p50_s * 1e3; },
        0);
    h += chart(
        "Inter-token latency (p50)", "ms", [](const LevelResult& L) { return L.itl_p50_s * 1e3; },
        1);

    // Weight bytes per generated token vs the decode batch: measured, and predicted for the MoE.
    std::vector<LineSeries> bytes;
    std::vector<LineSeries> experts;
    const ModelMeasures* ms[2] = {&a, &b};
    const ServingRun* rs[2] = {&sa, &sb};
    const std::string names[2] = {n.a, n.b};
    const char* colors[2] = {kColorA, kColorB};
    for (int i = 0; i < 2; ++i) {
        LineSeries measured{names[i] + " measured", colors[i], {}};
        LineSeries measured_e{names[i] + " measured", colors[i], {}};
        double bmax = 1;
        for (const auto& L : rs[i]->bench.levels) {
            if (!L.decode_batch || !L.weight_bytes_per_token) continue;
            measured.points.emplace_back(*L.decode_batch, *L.weight_bytes_per_token / 1e6);
            if (L.experts_per_layer)
                measured_e.points.emplace_back(*L.decode_batch, *L.experts_per_layer);
            bmax = std::max(bmax, *L.decode_batch);
        }
        if (!measured.points.empty()) bytes.push_back(measured);
        const StepCost cost = step_cost(*ms[i], *rs[i]);
        if (ms[i]->n_moe_layers == 0 || !cost.ok) continue;
        experts.push_back(measured_e);
        // Wider, under the routed prediction: the two coincide for near-uniform routers.
        LineSeries uni{names[i] + " uniform E(1-(1-k/E)^B)", kColorUniform, {}, true, false, 8};
        LineSeries routed{names[i] + " its routing", kColorRouted, {}, true, false, 4};
        LineSeries uni_e = uni, routed_e = routed;
        for (double B = 1; B <= std::ceil(bmax) + 1e-9; B += 0.25) {
            const double eu = uniform_experts_touched(ms[i]->n_expert, ms[i]->n_expert_used, B);
            uni.points.emplace_back(B, predicted_bytes_per_token(*ms[i], cost, eu, B) / 1e6);
            uni_e.points.emplace_back(B, eu);
            const double er = routed_experts_touched(ms[i]->routing, B);
            if (std::isfinite(er)) {
                routed.points.emplace_back(B, predicted_bytes_per_token(*ms[i], cost, er, B) / 1e6);
                routed_e.points.emplace_back(B, er);
            }
        }
        bytes.push_back(uni);
        experts.push_back(uni_e);
        if (!routed.points.empty()) bytes.push_back(routed), experts.push_back(routed_e);
    }
    LineChartOptions ob;
    ob.title = "Weight MB read per generated token";
    ob.x_label = "sequences per decode step";
    ob.y_label = "MB / token";
    ob.width = 520;
    ob.digits = 2;
    h += "<div class=\"chart\">" + line_chart_svg(bytes, ob) + "</div>\n";
    if (!experts.empty()) {
        LineChartOptions oe = ob;
        oe.title = "Distinct experts per MoE layer per step";
        oe.y_label = "experts";
        oe.digits = 0;
        h += "<div class=\"chart\">" + line_chart_svg(experts, oe) + "</div>\n";
    }
    h += "</div>\n";
    // The tables of the Markdown report, as HTML.
    for (int i = 0; i < 2; ++i) {
        h += "<h3>" + html_escape(names[i]) + "</h3>\n";
        if (!rs[i]->error.empty()) {
            h += "<p class=\"bad\">not measured: " + html_escape(rs[i]->error) + "</p>\n";
            continue;
        }
        h += "<table>\n<tr><th>clients</th><th>requests</th><th>failed</th><th>tok/s</th>"
             "<th>TTFT p50</th><th>ITL p50</th><th>decode batch</th><th>experts/layer</th>"
             "<th>weight MB/token</th></tr>\n";
        for (const auto& L : rs[i]->bench.levels)
            h += fmt::format(
                "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                "<td class=\"num\">{:.2f}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                "</tr>\n",
                L.concurrency, L.requests, L.failures, L.output_tok_s, fmt_s(L.ttft_p50_s),
                fmt_s(L.itl_p50_s), opt_num(L.decode_batch, 1, 2),
                ms[i]->n_moe_layers > 0 ? opt_num(L.experts_per_layer, 1, 2) : "-",
                opt_num(L.weight_bytes_per_token, 1e-6, 3));
        h += "</table>\n";
    }
    return h;
}

}  // namespace moe
