// moeinfer: the command-line entry point. Subcommands live in cmd_*.cpp.
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"

int main(int argc, char** argv) {
    moe::cli::keep_activation_buffers_in_heap();
    CLI::App app{"moeinfer: Mixture-of-Experts inference engine"};
    app.require_subcommand(1);
    int exit_code = 0;
    moe::cli::register_chat_command(app, exit_code);
    moe::cli::register_compare_command(app, exit_code);
    moe::cli::register_logits_command(app, exit_code);
    moe::cli::register_inspect_command(app, exit_code);
    moe::cli::register_eval_command(app, exit_code);
    moe::cli::register_routing_report_command(app, exit_code);
    moe::cli::register_run_command(app, exit_code);
    moe::cli::register_tokenize_command(app, exit_code);
    moe::cli::register_synth_command(app, exit_code);
    moe::cli::register_bench_command(app, exit_code);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    return exit_code;
}
