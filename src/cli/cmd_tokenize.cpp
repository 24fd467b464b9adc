// `moeinfer tokenize -m MODEL -f FILE`: prints token ids (placeholder until the tokenizer lands).
#include <fmt/core.h>

#include "cli/commands.h"

namespace moe::cli {

void register_tokenize_command(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("tokenize", "print the token ids of a text file");
    cmd->callback([&exit_code] {
        fmt::print(stderr, "error: tokenize is not implemented yet\n");
        exit_code = 1;
    });
}

}  // namespace moe::cli
