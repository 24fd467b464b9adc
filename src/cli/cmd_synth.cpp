// `moeinfer synth --like PRESET --type TYPE -o FILE.gguf [--layers N] [--seed S] [-t THREADS]`:
// writes a random-weight GGUF with the exact tensor shapes and header of a real model (see
// models/synth.h for the weights and the per-tensor type mix), streamed to disk.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include <unistd.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress_bar.h"
#include "models/synth.h"

namespace moe::cli {
namespace {

struct SynthArgs {
    std::string like, type = "q4_k_m", out;
    std::optional<int> layers;  // unset: the model's; 0 is refused, not "the model's"
    int threads = 0;
    uint64_t seed = 1;
    bool quiet = false;
};

int layer_count(const Preset& p) {
    for (const auto& [k, v] : p.metadata)
        if (k == p.arch + ".block_count") return int(v.as_int().value_or(0));
    return 0;
}

int run_synth(const SynthArgs& a) {
    const Preset* base = find_preset(a.like);
    if (!base) return report(fmt::format("unknown preset '{}' (known: {})", a.like, preset_names()));
    const SynthFileType* ft = find_synth_file_type(a.type);
    if (!ft)
        return report(fmt::format("unknown type '{}' (known: {})", a.type, synth_file_type_names()));
    Preset p = *base;
    if (a.layers) {
        auto r = preset_with_layers(*base, *a.layers);
        if (!r) return report(r.message());
        p = std::move(*r);
    }
    const double t0 = now_seconds();
    SynthOptions opt;
    opt.seed = a.seed;
    opt.n_threads = a.threads;
    std::unique_ptr<ProgressBar> bar;
    if (!a.quiet && progress_enabled())
        opt.progress = [&](uint64_t done, uint64_t total) {
            if (!bar) bar = std::make_unique<ProgressBar>("synth", total, true);
            bar->set(done);
        };
    auto r = synth_write(p, *ft, a.out, opt);
    if (bar) bar->finish();
    if (!r) {
        std::error_code ec;
        std::filesystem::remove(a.out, ec);  // never leave a truncated file behind
        return report(r.message());
    }
    std::printf("%s: %s %s, %d layers, %llu tensors, %.3f B params, %.2f GiB, %.1f s\n",
                a.out.c_str(), p.name.c_str(), ft->name.c_str(),
                layer_count(p),
                (unsigned long long)r->n_tensors, double(r->n_params) * 1e-9,
                double(r->file_bytes) / (1u << 30), now_seconds() - t0);
    return 0;
}

}  // namespace

void register_synth_command(CLI::App& app, int& exit_code) {
    auto a = std::make_shared<SynthArgs>();
    auto* cmd = app.add_subcommand("synth", "write a random-weight GGUF with a real model's shapes");
    cmd->add_option("--like", a->like, "preset: " + preset_names())->required();
    cmd->add_option("--type", a->type, "file type: " + synth_file_type_names() + " (default q4_k_m)");
    cmd->add_option("-o,--output", a->out, "output .gguf file")->required();
    cmd->add_option("--layers", a->layers, "number of layers (default: the model's)");
    cmd->add_option("--seed", a->seed, "random seed (default 1)");
    cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
    cmd->add_flag("-q,--quiet", a->quiet, "no progress on stderr");
    cmd->callback([a, &exit_code] { exit_code = run_synth(*a); });
}

}  // namespace moe::cli
