#include "core/sysinfo.h"

#include <fstream>
#include <sstream>

namespace moe {

namespace {

// Calls on_field(key, kilobytes) for every "Key:   1234 kB" line of a /proc file; false when
// the file cannot be read.
template <class F>
bool for_each_kb_field(const std::string& path, F&& on_field) {
    std::ifstream f(path);
    if (!f) return false;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream ss(line);
        std::string key;
        uint64_t kb = 0;
        if (ss >> key >> kb) on_field(key, kb);
    }
    return true;
}

}  // namespace

std::optional<MemInfo> read_meminfo(const std::string& path) {
    MemInfo mi;
    bool have_total = false;
    const bool read = for_each_kb_field(path, [&](const std::string& key, uint64_t kb) {
        if (key == "MemTotal:") mi.total = kb * 1024, have_total = true;
        if (key == "MemAvailable:") mi.available = kb * 1024;
    });
    if (!read || !have_total) return std::nullopt;
    return mi;
}

std::optional<ProcessMemory> read_process_memory(const std::string& path) {
    ProcessMemory pm;
    bool have_rss = false, have_hwm = false;
    const bool read = for_each_kb_field(path, [&](const std::string& key, uint64_t kb) {
        if (key == "VmRSS:") pm.rss = kb * 1024, have_rss = true;
        if (key == "VmHWM:") pm.peak_rss = kb * 1024, have_hwm = true;
    });
    if (!read || !have_rss || !have_hwm) return std::nullopt;
    return pm;
}

}  // namespace moe
