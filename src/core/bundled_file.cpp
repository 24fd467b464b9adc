#include "core/bundled_file.h"

#include <filesystem>
#include <system_error>
#include <vector>

namespace moe {

namespace fs = std::filesystem;

std::optional<std::string> self_exe_path() {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return std::nullopt;
    return exe.string();
}

std::string bundled_file(const std::string& dir, const std::string& file) {
    std::vector<fs::path> dirs = {fs::current_path() / dir};
    if (const auto exe = self_exe_path()) {
        const fs::path root = fs::path(*exe).parent_path().parent_path();
        dirs.push_back(root / dir);
        dirs.push_back(root / "share" / "moeinfer" / dir);
    }
    std::error_code ec;
    for (const auto& d : dirs)
        if (fs::exists(d / file, ec)) return (d / file).string();
    return (dirs[0] / file).string();
}

}  // namespace moe
