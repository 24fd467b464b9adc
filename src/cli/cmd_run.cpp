#include "cli/commands.h"
namespace moe::cli {
void register_run_command(CLI::App& app, int& exit_code) { app.add_subcommand("run", "todo"); }
}  // namespace moe::cli
