// moeinfer: the command-line entry point. Subcommands live in cmd_*.cpp.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/expert_parallel_options.h"
#include "core/progress_bar.h"

int main(int argc, char** argv) {
    moe::cli::keep_activation_buffers_in_heap();
    // Progress bars (loading weights, synth) draw only on a terminal: tests and scripts that read
    // stderr through a pipe never see them; serve turns them off for its logs.
    moe::set_progress_enabled(isatty(STDERR_FILENO) != 0);
    CLI::App app{"moeinfer: Mixture-of-Experts inference engine"};
    app.require_subcommand(1);
    // Bad options end like every other failure: one `error:` line.
    app.failure_message([](const CLI::App*, const CLI::Error& e) {
        return std::string("error: ") + e.what() + "\n";
    });
    int exit_code = 0;
    moe::cli::register_chat_command(app, exit_code);
    moe::cli::register_compare_command(app, exit_code);
    moe::cli::register_logits_command(app, exit_code);
    moe::cli::register_inspect_command(app, exit_code);
    moe::cli::register_eval_command(app, exit_code);
    moe::cli::register_routing_report_command(app, exit_code);
    moe::cli::register_routing_stats_command(app, exit_code);
    moe::cli::register_run_command(app, exit_code);
    moe::cli::register_tokenize_command(app, exit_code);
    moe::cli::register_synth_command(app, exit_code);
    moe::cli::register_bench_command(app, exit_code);
    moe::cli::register_serve_command(app, exit_code);
    moe::cli::register_bench_serve_command(app, exit_code);
    // llama.cpp spells serve's slot count "-np"; CLI11 short options are one letter.
    std::vector<std::string> args(argv + 1, argv + argc);
    for (auto& a : args)
        if (a == "-np") a = "--parallel";
    moe::cli::set_command_line(args);
    std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
    try {
        app.parse(args);
    } catch (const CLI::ParseError& e) {
        // --help exits 0; every bad option exits 1 like every other failure (not CLI11's codes).
        return app.exit(e) == 0 ? 0 : 1;
    }
    // Output lost on a full device or a closed pipe is a failure, not exit 0.
    const bool lost = std::fflush(stdout) != 0 || std::ferror(stdout);
    if (lost && exit_code == 0) {  // a failed command has already said why
        std::fprintf(stderr, "error: cannot write the output: %s\n", std::strerror(errno));
        return 1;
    }
    return exit_code;
}
