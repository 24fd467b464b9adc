// Each subcommand of `moeinfer` lives in its own cmd_<name>.cpp and registers itself here.
// The registration list in main.cpp is the only list of subcommands.
#pragma once

#include <CLI/CLI.hpp>

namespace moe::cli {

// Each register_* adds a subcommand whose callback sets `exit_code`.
void register_chat_command(CLI::App& app, int& exit_code);
void register_compare_command(CLI::App& app, int& exit_code);
void register_logits_command(CLI::App& app, int& exit_code);
void register_inspect_command(CLI::App& app, int& exit_code);
void register_eval_command(CLI::App& app, int& exit_code);
void register_routing_report_command(CLI::App& app, int& exit_code);
void register_routing_stats_command(CLI::App& app, int& exit_code);
void register_run_command(CLI::App& app, int& exit_code);
void register_tokenize_command(CLI::App& app, int& exit_code);
void register_synth_command(CLI::App& app, int& exit_code);
void register_bench_command(CLI::App& app, int& exit_code);
void register_serve_command(CLI::App& app, int& exit_code);
void register_bench_serve_command(CLI::App& app, int& exit_code);

}  // namespace moe::cli
