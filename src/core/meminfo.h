// Host memory from /proc/meminfo: what inspect estimates against and what a session checks its
// KV pool against before mapping it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace moe {

struct MemInfo {
    uint64_t total = 0, available = 0;  // bytes
};
// nullopt when the file is unreadable or has no MemTotal line.
std::optional<MemInfo> read_meminfo(const std::string& path = "/proc/meminfo");

}  // namespace moe
