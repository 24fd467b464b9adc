// What Linux says about the host and this process (/proc): host memory, and this process's
// resident set now and at its peak. Every reader returns "unknown" (nullopt) rather than failing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace moe {

// Host memory from /proc/meminfo, in bytes. nullopt when the file is unreadable or has no
// MemTotal; available is 0 when MemAvailable is missing (kernels before 3.14).
struct MemInfo {
    uint64_t total = 0, available = 0;
};
std::optional<MemInfo> read_meminfo(const std::string& path = "/proc/meminfo");

// This process's resident set from /proc/self/status, in bytes: VmRSS (now) and VmHWM (peak).
// nullopt when the file is unreadable or lacks either line.
struct ProcessMemory {
    uint64_t rss = 0, peak_rss = 0;
};
std::optional<ProcessMemory> read_process_memory(const std::string& path = "/proc/self/status");

}  // namespace moe
