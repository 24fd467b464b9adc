// A fixed pool of worker threads running parallel_for over flat task indices. The calling thread
// takes part, so a pool of N threads uses N-1 workers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/kernel_options.h"
#include "core/result.h"

namespace moe {

class ThreadPool {
  public:
    // Throws std::system_error when the system cannot start that many threads.
    explicit ThreadPool(int n_threads);
    // Checked: n_threads in [0, max_threads()] (0: hardware concurrency), and the system's
    // refusal to start a thread as an error. The way to make a pool from user input.
    static Result<std::unique_ptr<ThreadPool>> create(int n_threads);
    // 4 x hardware concurrency, at most 1024.
    static int max_threads();
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }
    // Scratch memory of the calling thread in this pool (a worker's own, else the caller's slot):
    // kernels' per-call buffers live as long as the pool, not in process-wide thread_locals.
    // Only for a thread running this pool's tasks or the one thread that calls its regions.
    std::vector<uint8_t>& scratch();
    // The kernel settings of the session that owns this pool (what its matmuls run with).
    const KernelOptions& kernel_options() const { return kernel_options_; }
    void set_kernel_options(const KernelOptions& o) { kernel_options_ = o; }
    // Runs fn(task) for task in [0, n_tasks), tasks handed out dynamically; returns when all ran.
    void parallel_for(int64_t n_tasks, const std::function<void(int64_t task)>& fn);
    // Splits [0, n) into contiguous chunks of at least `grain` items: fn(begin, end).
    void parallel_range(int64_t n, int64_t grain,
                        const std::function<void(int64_t begin, int64_t end)>& fn);

  private:
    void worker_loop(int slot);
    void stop_workers();
    void run_tasks();

    int n_threads_;
    KernelOptions kernel_options_;
    std::vector<std::vector<uint8_t>> scratch_;  // [n_threads]
    std::vector<std::thread> workers_;
    // Start: a region bumps generation_ (under mu_, so sleepers cannot miss it); workers spin on
    // it briefly before sleeping on cv_start_. Done: pending_ counts workers still in the region;
    // the caller spins on it briefly, then sleeps on cv_done_.
    std::mutex mu_;
    std::condition_variable cv_start_, cv_done_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    const std::function<void(int64_t)>* fn_ = nullptr;
    int64_t n_tasks_ = 0;
    std::atomic<int64_t> next_{0};
};

}  // namespace moe
