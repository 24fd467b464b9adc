// One progress bar for long byte-counted jobs (loading weights, synthesizing a file): bytes done,
// rate and ETA on stderr, redrawn in place. Shown only for jobs that last over a second, and only
// where the process allows it (the CLI turns it on for a terminal; never in serve's logs or tests).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace moe {

// Process-wide: whether progress bars may draw (default off; the CLI sets it from isatty(stderr)).
void set_progress_enabled(bool on);
bool progress_enabled();

// "load   42% [######........] 1.78/4.21 GB  1.52 GB/s  ETA 1.6 s" (decimal GB, like disk rates).
std::string format_progress(const std::string& label, uint64_t done, uint64_t total,
                            double elapsed_s);

class ProgressBar {
  public:
    // enabled: the caller's decision (progress_enabled() and no --quiet).
    ProgressBar(std::string label, uint64_t total, bool enabled);
    ~ProgressBar() { finish(); }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // Thread-safe: adds bytes done and redraws at most every 100 ms, after the first second.
    void add(uint64_t bytes);
    // Sets the bytes done (single producer).
    void set(uint64_t done);
    // Draws the final state (if anything was drawn) and ends the line.
    void finish();

  private:
    void maybe_draw(uint64_t done);
    std::string label_;
    uint64_t total_;
    bool enabled_;
    double t0_;
    std::atomic<uint64_t> done_{0};
    std::mutex draw_mu_;
    double last_draw_ = -1;  // seconds since t0_ of the last draw; < 0: nothing drawn yet
    bool finished_ = false;
};

}  // namespace moe
