// Writing output files so that a failure never goes unnoticed or leaves a truncated file: the
// data goes to a temporary file next to the target, every write and the final flush/close are
// checked, and only then is it renamed over the target. Devices and FIFOs (-o /dev/full,
// -o /dev/stdout) are written in place, still with every write checked.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "core/result.h"

namespace moe {

class AtomicFile {
  public:
    // Creates the temporary file (or opens the device) for `path`.
    static Result<AtomicFile> create(const std::string& path);
    AtomicFile(AtomicFile&& o) noexcept;
    AtomicFile& operator=(AtomicFile&&) = delete;
    ~AtomicFile();  // without commit(): removes the temporary file

    // Each returns an error naming the path (ENOSPC as "No space left on device").
    Result<void> write(const void* data, size_t n);
    Result<void> write(std::string_view s) { return write(s.data(), s.size()); }
    // Flushes, fsyncs, closes and renames into place.
    Result<void> commit();

    const std::string& path() const { return path_; }
    std::FILE* stream() { return f_; }

  private:
    AtomicFile() = default;
    std::string path_, tmp_;  // tmp_ empty: written in place
    std::FILE* f_ = nullptr;
};

// The whole of `data` to `path`, atomically.
Result<void> write_file_atomic(const std::string& path, std::string_view data);

// Fails when the file system holding `path` has less than `bytes` free (statvfs), so that a
// large write is refused before it starts rather than dying half-way.
Result<void> check_free_space(const std::string& path, uint64_t bytes);

}  // namespace moe
