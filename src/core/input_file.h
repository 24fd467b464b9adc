// Reading small user-named input files (text, JSON, templates) safely: the path is opened
// without blocking and must be a regular file (a FIFO or device would block or never end), and
// its size is capped before anything is read.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"

namespace moe {

constexpr uint64_t kMaxTextInput = uint64_t(256) << 20;  // 256 MiB: text, prompts, reports

// The whole file; an error names the path when it cannot be opened, is not a regular file,
// or is larger than max_bytes.
Result<std::string> read_input_file(const std::string& path, uint64_t max_bytes = kMaxTextInput);

// Opens for reading with O_NONBLOCK and checks for a regular file before any read; returns the
// descriptor (the caller closes it) and the size.
struct OpenedInput {
    int fd = -1;
    uint64_t size = 0;
};
Result<OpenedInput> open_regular_file(const std::string& path);

}  // namespace moe
