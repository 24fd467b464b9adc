#include "core/mapped_file.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/input_file.h"
#include "core/progress_bar.h"
#include "core/sysinfo.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older kernels answer EINVAL (handled below)
#endif

namespace moe {
namespace {

std::atomic<WeightMemory> g_weight_memory{WeightMemory::Auto};
std::atomic<bool> g_populate{true};

constexpr size_t kHugePage = size_t(2) << 20;
constexpr uint64_t kLoadMinBytes = uint64_t(64) << 20;
// Loads go in 64 MiB pieces taken from a shared counter by the reader threads.
constexpr size_t kLoadChunk = size_t(64) << 20;

// Reader threads: at least 4 even on 2 cores, because a cold load waits on the disk and more
// requests in flight keep it busy; at most 8.
unsigned loader_threads() {
    return std::clamp(std::thread::hardware_concurrency(), 4u, 8u);
}

// Runs work(begin, end) over [0, size) in kLoadChunk pieces on loader_threads() threads; the
// first error (a non-empty string) stops every thread and is returned.
std::string parallel_chunks(size_t size, const std::function<std::string(size_t, size_t)>& work) {
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    std::string first_error;
    std::vector<std::thread> threads;
    const unsigned n = std::min<size_t>(loader_threads(), (size + kLoadChunk - 1) / kLoadChunk);
    for (unsigned i = 0; i < n; ++i)
        threads.emplace_back([&] {
            while (!failed.load()) {
                const size_t b = next.fetch_add(kLoadChunk);
                if (b >= size) return;
                std::string e = work(b, std::min(size, b + kLoadChunk));
                if (!e.empty()) {
                    std::lock_guard lock(mu);
                    if (first_error.empty()) first_error = std::move(e);
                    failed.store(true);
                }
            }
        });
    for (auto& t : threads) t.join();
    return first_error;
}

}  // namespace

WeightMemory choose_weight_memory(uint64_t file_bytes, uint64_t mem_available) {
    return file_bytes >= kLoadMinBytes && file_bytes <= mem_available / 2 ? WeightMemory::Load
                                                                          : WeightMemory::Map;
}

bool should_populate_mapping(uint64_t file_bytes, uint64_t mem_available) {
    return file_bytes <= mem_available / 10 * 9;
}

// Measured on this machine (2 cores, shared) with a 4.2 GB file dropped from the page cache:
// MAP_POPULATE (one thread) 1.0 GB/s, MADV_WILLNEED + touching every page (4 threads) 1.8 GB/s,
// pread into a scratch buffer + MADV_POPULATE_READ (4 threads) 1.1 GB/s, MADV_POPULATE_READ on
// 64 MiB chunks (4 threads) 3.2 GB/s. MADV_POPULATE_READ also reports EFAULT where touching the
// pages would raise SIGBUS (a file that shrank), so it is both the fastest and the safe one.
Result<void> populate_mapping(const uint8_t* data, size_t size, const std::string& path,
                              ProgressBar* bar) {
    std::atomic<bool> unsupported{false};
    const std::string err = parallel_chunks(size, [&](size_t b, size_t e) -> std::string {
        void* p = const_cast<uint8_t*>(data + b);
        if (unsupported.load()) {
            ::madvise(p, e - b, MADV_WILLNEED);  // kernels before 5.14: read-ahead advice only
        } else if (::madvise(p, e - b, MADV_POPULATE_READ) != 0) {
            const int en = errno;
            if (en == EINVAL) {
                unsupported.store(true);
                ::madvise(p, e - b, MADV_WILLNEED);
            } else {
                struct stat st {};
                if (::stat(path.c_str(), &st) == 0 && uint64_t(st.st_size) < size)
                    return fmt::format("'{}' shrank to {} bytes while being loaded (it had {})",
                                       path, uint64_t(st.st_size), size);
                return fmt::format("cannot read '{}' between bytes {} and {}: {}", path, b, e,
                                   std::strerror(en));
            }
        }
        if (bar) bar->add(e - b);
        return {};
    });
    if (!err.empty()) return make_error("{}", err);
    return {};
}

void set_weight_memory(WeightMemory m) {
    g_weight_memory.store(m);
}
WeightMemory weight_memory() {
    return g_weight_memory.load();
}
void set_populate_mappings(bool on) {
    g_populate.store(on);
}

Result<void> copy_mapping_into_memory(const uint8_t* base, size_t file_size, size_t begin,
                                      size_t end, const std::string& path) {
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    begin = begin / page * page;
    end = std::min((end + page - 1) / page * page, (file_size + page - 1) / page * page);
    if (begin >= end) return {};
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error("cannot open '{}': {}", path, std::strerror(errno));
    auto* p = const_cast<uint8_t*>(base) + begin;
    void* r = ::mmap(p, end - begin, PROT_READ | PROT_WRITE,
                     MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        return make_error("cannot allocate {} bytes for '{}': {}", end - begin, path,
                          std::strerror(e));
    }
    const size_t want = std::min(end, file_size) - begin;
    for (size_t done = 0; done < want;) {
        const ssize_t n = ::pread(fd, p + done, want - done, off_t(begin + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int e = errno;
            ::close(fd);
            return make_error("cannot read '{}' at byte {}: {}", path, begin + done,
                              n < 0 ? std::strerror(e) : "unexpected end (the file shrank?)");
        }
        done += size_t(n);
    }
    ::posix_fadvise(fd, off_t(begin), off_t(want), POSIX_FADV_DONTNEED);
    ::close(fd);
    ::mprotect(p, end - begin, PROT_READ);
    return {};
}

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
    return open(path, weight_memory());
}

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path, WeightMemory mode) {
    // Refuses FIFOs and other non-regular files without blocking on them (core/input_file).
    MOE_TRY(const OpenedInput in, open_regular_file(path));
    const int fd = in.fd;
    std::shared_ptr<MappedFile> f(new MappedFile());
    f->path_ = path;
    f->size_ = size_t(in.size);
    if (f->size_ == 0) {
        ::close(fd);
        return f;
    }
    if (mode == WeightMemory::Auto) {
        const auto mi = read_meminfo();
        mode = choose_weight_memory(f->size_, mi ? mi->available : 0);
    }
    if (mode == WeightMemory::Load) {
        // 2 MiB-aligned anonymous region, huge pages requested before the first touch.
        const size_t len = (f->size_ + kHugePage - 1) / kHugePage * kHugePage;
        void* raw = ::mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) {
            const int e = errno;
            ::close(fd);
            return make_error("cannot allocate {} bytes for '{}': {} (try --mmap)", len, path,
                              std::strerror(e));
        }
        f->region_ = raw;
        f->region_size_ = len + kHugePage;
        auto* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + kHugePage - 1) /
                                                kHugePage * kHugePage);
        ::madvise(base, len, MADV_HUGEPAGE);  // advice only: 4 KiB pages still work
        // Read in parallel in large pieces: besides waiting on the disk, much of the time is the
        // kernel zeroing fresh pages on first touch, which runs on the touching thread.
        ProgressBar bar("load", f->size_, progress_enabled());
        const std::string err = parallel_chunks(f->size_, [&](size_t b, size_t e) -> std::string {
            for (size_t done = b; done < e;) {
                const ssize_t r = ::pread(fd, base + done, e - done, off_t(done));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0)
                    return fmt::format("cannot read '{}' at byte {}: {}", path, done,
                                       r < 0 ? std::strerror(errno) : "unexpected end");
                done += size_t(r);
                bar.add(uint64_t(r));
            }
            return {};
        });
        bar.finish();
        if (!err.empty()) {
            ::close(fd);
            return make_error("{}", err);
        }
        ::mprotect(base, len, PROT_READ);
        f->data_ = base;
        f->loaded_ = true;
        ::close(fd);
        return f;
    }
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        return make_error("cannot map '{}': {}", path, std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
    f->region_ = p;
    f->region_size_ = f->size_;
    ::close(fd);
    const auto mi = read_meminfo();
    if (g_populate.load() && mi && should_populate_mapping(f->size_, mi->available)) {
        ProgressBar bar("load", f->size_, progress_enabled());
        MOE_TRY_VOID(populate_mapping(f->data_, f->size_, path, &bar));
    }
    return f;
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(std::string bytes, std::string name) {
    std::shared_ptr<MappedFile> f(new MappedFile());
    f->owned_ = std::move(bytes);
    f->path_ = std::move(name);
    f->size_ = f->owned_.size();
    f->data_ = reinterpret_cast<const uint8_t*>(f->owned_.data());
    f->loaded_ = true;
    return f;
}

MappedFile::~MappedFile() {
    if (region_) ::munmap(region_, region_size_);
}

}  // namespace moe
