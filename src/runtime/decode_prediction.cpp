#include "runtime/decode_prediction.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <thread>

#include "models/model.h"

namespace moe {

DecodeBytes expert_decode_bytes(const ModelConfig& c, uint64_t expert_bytes) {
    DecodeBytes b;
    b.expert_bytes = expert_bytes;
    b.n_experts = uint64_t(c.n_moe_layers()) * uint64_t(std::max(c.moe.n_expert, 0));
    if (c.moe.n_expert > 0)
        b.experts_per_token =
            double(expert_bytes) * double(c.moe.n_expert_used) / double(c.moe.n_expert);
    return b;
}

DecodePrediction predict_decode(const DecodeBytes& b, double resident_share, double ram_bw,
                                double disk_bw) {
    DecodePrediction p;
    p.resident_share = std::clamp(resident_share, 0.0, 1.0);
    p.ram_bytes = b.non_expert_per_token + p.resident_share * b.experts_per_token;
    p.disk_bytes = (1.0 - p.resident_share) * b.experts_per_token;
    const double t = (ram_bw > 0 ? p.ram_bytes / ram_bw : 0) +
                     (p.disk_bytes > 0 && disk_bw > 0 ? p.disk_bytes / disk_bw : 0);
    p.tokens_per_second = t > 0 ? 1.0 / t : 0;
    return p;
}

double budget_expert_share(const DecodeBytes& b, uint64_t budget, uint64_t resident, int k) {
    if (b.n_experts == 0 || b.expert_bytes == 0) return 1.0;
    const double per = double(b.expert_bytes) / double(b.n_experts);
    const double room = double(budget) - double(resident);
    if (room < double(k) * per) return -1.0;
    return std::min(1.0, std::floor(room / per) / double(b.n_experts));
}

namespace {

constexpr uint64_t kPiece = uint64_t(2) << 20;

// Reads [0, bytes) of fd with `threads` threads, piece i by thread i % threads.
Result<double> timed_read(int fd, const std::string& path, uint64_t bytes, int threads) {
    ::posix_fadvise(fd, 0, off_t(bytes), POSIX_FADV_DONTNEED);
    const uint64_t n_pieces = (bytes + kPiece - 1) / kPiece;
    threads = std::clamp(threads, 1, 16);
    std::atomic<int> failed{0};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            std::vector<char> buf(kPiece);
            for (uint64_t i = uint64_t(t); i < n_pieces; i += uint64_t(threads)) {
                const uint64_t off = i * kPiece, len = std::min(kPiece, bytes - off);
                for (uint64_t done = 0; done < len;) {
                    const ssize_t r = ::pread(fd, buf.data(), len - done, off_t(off + done));
                    if (r < 0 && errno == EINTR) continue;
                    if (r <= 0) {
                        failed = r < 0 ? errno : EIO;
                        return;
                    }
                    done += uint64_t(r);
                }
            }
        });
    for (auto& t : ts) t.join();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ::posix_fadvise(fd, 0, off_t(bytes), POSIX_FADV_DONTNEED);
    if (failed) return make_error("cannot read '{}': {}", path, std::strerror(failed));
    return dt > 0 ? double(bytes) / dt : 0.0;
}

}  // namespace

Result<double> measure_disk_read_bandwidth(const std::string& path, uint64_t bytes, int threads) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error("cannot open '{}': {}", path, std::strerror(errno));
    const off_t size = ::lseek(fd, 0, SEEK_END);
    if (size <= 0) {
        ::close(fd);
        return make_error("'{}' is empty", path);
    }
    auto r = timed_read(fd, path, std::min(bytes, uint64_t(size)), threads);
    ::close(fd);
    return r;
}

Result<double> measure_dir_read_bandwidth(const std::string& dir, uint64_t bytes, int threads) {
    const std::string path =
        (std::filesystem::path(dir) / (".moeinfer-disk-probe-" + std::to_string(::getpid())))
            .string();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return make_error("cannot create a probe file in '{}': {}", dir, std::strerror(errno));
    // Pseudo-random bytes: a file system that compresses or deduplicates must still read them.
    std::vector<uint64_t> buf(kPiece / 8);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    std::string err;
    for (uint64_t off = 0; off < bytes && err.empty(); off += kPiece) {
        for (auto& v : buf) x ^= x << 13, x ^= x >> 7, x ^= x << 17, v = x;
        const size_t len = size_t(std::min(kPiece, bytes - off));
        if (::pwrite(fd, buf.data(), len, off_t(off)) != ssize_t(len))
            err = fmt::format("cannot write the probe file '{}': {}", path, std::strerror(errno));
    }
    if (err.empty() && ::fdatasync(fd) != 0)
        err = fmt::format("cannot sync the probe file '{}': {}", path, std::strerror(errno));
    Result<double> r = err.empty() ? timed_read(fd, path, bytes, threads) : make_error("{}", err);
    ::close(fd);
    ::unlink(path.c_str());
    return r;
}

}  // namespace moe
