#include "core/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moe {

Result<OpenedInput> open_regular_file(const std::string& path) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return make_error("cannot open '{}': {}", path, std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return make_error("cannot stat '{}': {}", path, std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return make_error("'{}' is not a regular file", path);
    }
    // Back to blocking reads (regular files never block, but keep the usual semantics).
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return OpenedInput{fd, uint64_t(st.st_size)};
}

Result<std::string> read_input_file(const std::string& path, uint64_t max_bytes) {
    MOE_TRY(const OpenedInput in, open_regular_file(path));
    if (in.size > max_bytes) {
        ::close(in.fd);
        return make_error("'{}' is {} bytes, over the limit of {} bytes", path, in.size, max_bytes);
    }
    std::string out(size_t(in.size), '\0');
    size_t done = 0;
    while (done < out.size()) {
        const ssize_t r = ::read(in.fd, out.data() + done, out.size() - done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            const int e = errno;
            ::close(in.fd);
            return make_error("cannot read '{}': {}", path, std::strerror(e));
        }
        if (r == 0) break;  // shrank while reading
        done += size_t(r);
    }
    out.resize(done);
    ::close(in.fd);
    return out;
}

}  // namespace moe
