#include "cli/commands.h"
namespace moe::cli {
void register_logits_command(CLI::App& app, int& exit_code) { app.add_subcommand("logits", "todo"); }
}  // namespace moe::cli
