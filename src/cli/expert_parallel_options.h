// `--expert-parallel` and its options (run, bench, eval, logits): joining the MPI job, placing
// the experts, the start-up agreement check, and who prints. Under `mpirun -np N` every rank
// runs the same command and the same deterministic loop; rank 0 alone writes output, the other
// ranks' stdout and stderr go to /dev/null and only their `error:` lines are kept. Any error on
// any rank, once the job is joined, ends the whole job (MPI_Abort): no rank is left waiting.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/result.h"
#include "models/model.h"
#include "parallel/expert_parallel.h"
#include "runtime/step_mirror.h"

namespace moe::cli {

struct ExpertParallelArgs {
    bool on = false;
    std::string placement = "contiguous";
    std::string routing_stats;  // balanced: expected loads
    std::string combine = "auto";
};
void add_expert_parallel_options(CLI::App* cmd, ExpertParallelArgs& a);

// The command line as main() parsed it (the start-up check compares it across ranks).
void set_command_line(const std::vector<std::string>& args);

// With --expert-parallel: initialises MPI, quiets ranks > 0. Call first in a command.
// several_threads: the command makes MPI calls from more than one thread, one at a time (serve).
Result<void> join_expert_parallel(const ExpertParallelArgs& a, bool several_threads = false);
// With --expert-parallel, after the model is loaded: places the experts, keeps this rank's
// resident, checks that every rank has the same file header and options (barrier with a
// timeout). Returns the shard (null without the flag).
Result<std::shared_ptr<ExpertParallel>> apply_expert_parallel(Model& m,
                                                              const ExpertParallelArgs& a);

// Per-rank figures (collective: every rank calls it): experts owned, expert rows computed
// (rows x experts, summed over layers; their spread is the load imbalance), time in routing
// broadcasts and combines (waiting for slower ranks included) vs the rest of `wall_s`. A table on
// rank 0, "" elsewhere.
Result<std::string> expert_parallel_table(const ExpertParallel& ep, double wall_s);
// The placement as JSON: {"ranks": N, "placement": ..., "layers": [{"layer": il, "rank": [..]}]}
// (each expert's rank), for routing-stats files and reports.
nlohmann::json expert_parallel_json(const ExpertParallel& ep);

// serve: the joined job as a step channel (runtime/step_mirror.h), rank 0 leading; null
// without --expert-parallel.
std::unique_ptr<StepChannel> make_step_channel();

// Whether this process writes output: no expert parallelism, or rank 0.
bool is_output_rank();
// The joined job's communicator (null without --expert-parallel).
Comm* job_comm();
// Called by report(): on an expert-parallel job, prints on the rank's own stderr and aborts
// the job.
void report_and_abort_if_parallel(const std::string& line);

}  // namespace moe::cli
