#include "core/meminfo.h"

#include <fstream>
#include <sstream>

namespace moe {

std::optional<MemInfo> read_meminfo(const std::string& path) {
    std::ifstream f(path);
    if (!f) return std::nullopt;
    MemInfo mi;
    bool have_total = false;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream ss(line);
        std::string key;
        uint64_t kb = 0;
        if (!(ss >> key >> kb)) continue;
        if (key == "MemTotal:") mi.total = kb * 1024, have_total = true;
        if (key == "MemAvailable:") mi.available = kb * 1024;
    }
    if (!have_total) return std::nullopt;
    return mi;
}

}  // namespace moe
