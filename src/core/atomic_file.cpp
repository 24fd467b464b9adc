#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace moe {
namespace {

std::string dir_of(const std::string& path) {
    const std::string d = std::filesystem::path(path).parent_path().string();
    return d.empty() ? "." : d;
}

}  // namespace

Result<AtomicFile> AtomicFile::create(const std::string& path) {
    AtomicFile f;
    f.path_ = path;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode)) return make_error("cannot write '{}': it is a directory", path);
        // A device or FIFO: write in place (O_NONBLOCK would fail a FIFO without a reader
        // instead of blocking; a writer waiting for a reader is what the user asked for).
        f.f_ = std::fopen(path.c_str(), "wb");
        if (!f.f_)
            return make_error("cannot open '{}' for writing: {}", path, std::strerror(errno));
        return f;
    }
    std::string tmpl =
        dir_of(path) + "/." + std::filesystem::path(path).filename().string() + ".tmp.XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0)
        return make_error("cannot write '{}': {}", path, std::strerror(errno));
    ::fchmod(fd, 0644);
    f.tmp_ = tmpl;
    f.f_ = ::fdopen(fd, "wb");
    if (!f.f_) {
        const int e = errno;
        ::close(fd);
        ::unlink(tmpl.c_str());
        return make_error("cannot open '{}' for writing: {}", path, std::strerror(e));
    }
    return f;
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), f_(o.f_) {
    o.f_ = nullptr;
    o.tmp_.clear();
}

AtomicFile::~AtomicFile() {
    if (f_) std::fclose(f_);
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

Result<void> AtomicFile::write(const void* data, size_t n) {
    if (!f_) return make_error("cannot write '{}': already closed", path_);
    if (n > 0 && std::fwrite(data, 1, n, f_) != n)
        return make_error("cannot write '{}': {}", path_, std::strerror(errno));
    return {};
}

Result<void> AtomicFile::commit() {
    if (!f_) return make_error("cannot write '{}': already closed", path_);
    std::FILE* f = f_;
    f_ = nullptr;
    int err = 0;
    if (std::fflush(f) != 0) err = errno;
    if (!err && !tmp_.empty() && ::fsync(::fileno(f)) != 0) err = errno;
    if (std::fclose(f) != 0 && !err) err = errno;
    if (err) return make_error("cannot write '{}': {}", path_, std::strerror(err));
    if (tmp_.empty()) return {};
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
        return make_error("cannot rename the finished file to '{}': {}", path_,
                          std::strerror(errno));
    tmp_.clear();
    return {};
}

Result<void> write_file_atomic(const std::string& path, std::string_view data) {
    MOE_TRY(auto f, AtomicFile::create(path));
    MOE_TRY_VOID(f.write(data));
    return f.commit();
}

Result<void> check_free_space(const std::string& path, uint64_t bytes) {
    struct statvfs vs {};
    if (::statvfs(dir_of(path).c_str(), &vs) != 0) return {};  // unknown: let the writes tell
    const uint64_t free_bytes = uint64_t(vs.f_bavail) * uint64_t(vs.f_frsize);
    if (free_bytes < bytes)
        return make_error("'{}' needs {:.2f} GiB but its file system has {:.2f} GiB free", path,
                          double(bytes) / double(1ull << 30),
                          double(free_bytes) / double(1ull << 30));
    return {};
}

}  // namespace moe
