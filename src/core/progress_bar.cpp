#include "core/progress_bar.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace moe {
namespace {

std::atomic<bool> g_progress{false};

constexpr double kShowAfterS = 1.0;  // short loads stay silent
constexpr double kRedrawEveryS = 0.1;
constexpr int kBarWidth = 20;

double seconds_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

void set_progress_enabled(bool on) {
    g_progress.store(on);
}
bool progress_enabled() {
    return g_progress.load();
}

std::string format_progress(const std::string& label, uint64_t done, uint64_t total,
                            double elapsed_s) {
    done = std::min(done, total);
    const double frac = total ? double(done) / double(total) : 1.0;
    const int filled = int(frac * kBarWidth);
    std::string bar(size_t(filled), '#');
    bar.resize(size_t(kBarWidth), '.');
    const double rate = elapsed_s > 0 ? double(done) / elapsed_s : 0;  // bytes/s
    std::string eta = "ETA --";
    if (done == total)
        eta = fmt::format("{:.1f} s", elapsed_s);
    else if (rate > 0)
        eta = fmt::format("ETA {:.1f} s", double(total - done) / rate);
    return fmt::format("{} {:3d}% [{}] {:.2f}/{:.2f} GB  {:.2f} GB/s  {}", label, int(frac * 100),
                       bar, double(done) * 1e-9, double(total) * 1e-9, rate * 1e-9, eta);
}

ProgressBar::ProgressBar(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), t0_(seconds_now()) {}

void ProgressBar::add(uint64_t bytes) {
    const uint64_t done = done_.fetch_add(bytes) + bytes;
    if (enabled_) maybe_draw(done);
}

void ProgressBar::set(uint64_t done) {
    done_.store(done);
    if (enabled_) maybe_draw(done);
}

void ProgressBar::maybe_draw(uint64_t done) {
    const double el = seconds_now() - t0_;
    if (el < kShowAfterS) return;
    std::unique_lock lock(draw_mu_, std::try_to_lock);  // a busy drawer is enough
    if (!lock.owns_lock() || finished_) return;
    if (last_draw_ >= 0 && el - last_draw_ < kRedrawEveryS) return;
    last_draw_ = el;
    // \r and clear-to-end: the line shrinks when the ETA gets shorter.
    std::fprintf(stderr, "\r%s\x1b[K", format_progress(label_, done, total_, el).c_str());
    std::fflush(stderr);
}

void ProgressBar::finish() {
    std::lock_guard lock(draw_mu_);
    if (finished_) return;
    finished_ = true;
    if (!enabled_ || last_draw_ < 0) return;  // never drawn: a short job prints nothing
    const double el = seconds_now() - t0_;
    std::fprintf(stderr, "\r%s\x1b[K\n", format_progress(label_, done_.load(), total_, el).c_str());
    std::fflush(stderr);
}

}  // namespace moe
