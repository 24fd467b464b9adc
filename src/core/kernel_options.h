// How one session's kernels run: set per Session (SessionOptions), carried by its ThreadPool to
// every matmul (which copies it into the packed activations once per call), so several models or
// configurations in one process do not share process-wide switches.
#pragma once

namespace moe {

struct KernelOptions {
    // The highest instruction set to use (a kern::Isa value: 0 scalar, 1 AVX2, 2 AVX-512),
    // clamped to what the machine supports; -1: the process default (best supported, or MOE_ISA).
    int isa = -1;
    // Batch invariance: each row's result is independent of the other rows in the call (one
    // kernel path and accumulation order per weight type, whatever the number of rows).
    bool deterministic = false;
};

}  // namespace moe
