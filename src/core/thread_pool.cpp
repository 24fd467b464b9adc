#include "core/thread_pool.h"

#include <algorithm>
#include <system_error>

namespace moe {
namespace {

// Spin iterations before sleeping: long enough to bridge the gap between the back-to-back
// regions of a forward pass (tens of microseconds), short enough not to burn a shared core.
constexpr int kSpin = 1 << 12;

// Which pool a worker thread belongs to and its slot there (the caller of a region is slot 0).
thread_local const ThreadPool* tl_pool = nullptr;
thread_local int tl_slot = 0;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    try {
        scratch_.resize(size_t(n_threads_));
        for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
    } catch (...) {  // the system refused a thread: stop those started, then report
        stop_workers();
        throw;
    }
}

ThreadPool::~ThreadPool() {
    stop_workers();
}

std::vector<uint8_t>& ThreadPool::scratch() {
    return scratch_[size_t(tl_pool == this ? tl_slot : 0)];
}

int ThreadPool::max_threads() {
    const int64_t hw = std::max(1u, std::thread::hardware_concurrency());
    return int(std::min<int64_t>(1024, 4 * hw));
}

Result<std::unique_ptr<ThreadPool>> ThreadPool::create(int n_threads) {
    if (n_threads < 0 || n_threads > max_threads())
        return make_error("{} threads: this machine allows 1 to {} (4 x {} cores, at most 1024)",
                          n_threads, max_threads(), std::thread::hardware_concurrency());
    const int n =
        n_threads > 0 ? n_threads : int(std::max(1u, std::thread::hardware_concurrency()));
    try {
        return std::make_unique<ThreadPool>(n);
    } catch (const std::system_error& e) {
        return make_error("cannot start {} threads: {}", n, e.what());
    }
}

void ThreadPool::stop_workers() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_.store(true, std::memory_order_release);
        generation_.fetch_add(1, std::memory_order_release);
    }
    cv_start_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run_tasks() {
    for (;;) {
        const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
        if (t >= n_tasks_) break;
        (*fn_)(t);
    }
}

void ThreadPool::worker_loop(int slot) {
    tl_pool = this, tl_slot = slot;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = generation_.load(std::memory_order_acquire);
        for (int i = 0; i < kSpin && g == seen; ++i) {
            cpu_relax();
            g = generation_.load(std::memory_order_acquire);
        }
        if (g == seen) {
            std::unique_lock<std::mutex> lk(mu_);
            cv_start_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            g = generation_.load(std::memory_order_acquire);
        }
        seen = g;
        if (stop_.load(std::memory_order_acquire)) return;
        run_tasks();
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            // Last one out: wake the caller in case it stopped spinning.
            std::lock_guard<std::mutex> lk(mu_);
            cv_done_.notify_one();
        }
    }
}

void ThreadPool::parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
    if (n_tasks <= 0) return;
    if (workers_.empty() || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t);
        return;
    }
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(int(workers_.size()), std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> lk(mu_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    cv_start_.notify_all();
    run_tasks();
    for (int i = 0; i < kSpin && pending_.load(std::memory_order_acquire) != 0; ++i) cpu_relax();
    if (pending_.load(std::memory_order_acquire) != 0) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_done_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    fn_ = nullptr;
}

void ThreadPool::parallel_range(int64_t n, int64_t grain,
                                const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    const int64_t max_chunks = int64_t(n_threads_) * 4;
    const int64_t chunks = std::clamp<int64_t>(n / grain, 1, max_chunks);
    const int64_t per = (n + chunks - 1) / chunks;
    parallel_for(chunks, [&](int64_t c) {
        const int64_t b = c * per, e = std::min(n, b + per);
        if (b < e) fn(b, e);
    });
}

}  // namespace moe
