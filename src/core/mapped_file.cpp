#include "core/mapped_file.h"

#include "core/input_file.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/sysinfo.h"

namespace moe {
namespace {

std::atomic<WeightMemory> g_weight_memory{WeightMemory::Auto};

constexpr size_t kHugePage = size_t(2) << 20;
constexpr uint64_t kLoadMinBytes = uint64_t(64) << 20;

}  // namespace

WeightMemory choose_weight_memory(uint64_t file_bytes, uint64_t mem_available) {
    return file_bytes >= kLoadMinBytes && file_bytes <= mem_available / 2 ? WeightMemory::Load
                                                                          : WeightMemory::Map;
}

void set_weight_memory(WeightMemory m) {
    g_weight_memory.store(m);
}
WeightMemory weight_memory() {
    return g_weight_memory.load();
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
        // Read in parallel: most of the time is the kernel zeroing fresh pages on first touch,
        // which runs on the touching thread.
        const unsigned n_threads = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
        const size_t per = (f->size_ / n_threads + kHugePage - 1) / kHugePage * kHugePage;
        std::vector<std::string> errors(n_threads);
        std::vector<std::thread> readers;
        for (unsigned i = 0; i < n_threads; ++i)
            readers.emplace_back([&, i] {
                const size_t b = std::min(f->size_, size_t(i) * per);
                const size_t e = std::min(f->size_, b + per);
                for (size_t done = b; done < e;) {
                    const ssize_t r =
                        ::pread(fd, base + done, std::min<size_t>(e - done, 1u << 28), off_t(done));
                    if (r < 0 && errno == EINTR) continue;
                    if (r <= 0) {
                        errors[i] = fmt::format("cannot read '{}' at byte {}: {}", path, done,
                                                r < 0 ? std::strerror(errno) : "unexpected end");
                        return;
                    }
                    done += size_t(r);
                }
            });
        for (auto& t : readers) t.join();
        for (const auto& e : errors)
            if (!e.empty()) {
                ::close(fd);
                return make_error("{}", e);
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
