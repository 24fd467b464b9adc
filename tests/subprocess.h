// Runs a program as a child process (no shell) and captures what it printed. A child that ends
// by a signal (a crash, an abort, a sanitizer report) is a test failure wherever it happens.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moe::test {

struct ProcessResult {
    int code = -1;         // exit status; -1 when the child did not exit normally
    int signal = 0;        // the signal that ended the child, 0 if none
    std::string out, err;  // stdout, stderr

    // stdout then stderr, for checks that read both ("one line in total").
    std::string all() const { return out + err; }
};

// Runs argv[0] (a path) with argv, stdin closed. Records a test failure when the child cannot
// be started or is ended by a signal. stdout_path: a file the child's stdout goes to instead of
// ProcessResult::out (such as /dev/full, to see how the child takes a failed write).
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::string& stdout_path = "");

// Splits a command line at spaces; "double quotes" group words. No other shell syntax.
std::vector<std::string> split_args(std::string_view command_line);

// The moeinfer binary under test with `args` (split by split_args).
ProcessResult run_moeinfer(std::string_view args);

// How every command reports bad input: the whole output (stdout + stderr) is one line that
// starts with "error: ", and the exit status is 1. `what` (the command line) labels a failure.
void expect_one_error_line(const ProcessResult& r, std::string_view what);

}  // namespace moe::test
