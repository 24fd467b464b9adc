// Files shipped with moeinfer (models/, data/), found from the working directory or the binary.
#pragma once

#include <optional>
#include <string>

namespace moe {

// This program's path (/proc/self/exe), or nullopt when Linux does not say.
std::optional<std::string> self_exe_path();

// The first of ./<dir>/<file>, <binary>/../../<dir>/<file> (build/moeinfer in a checkout) and
// <binary>/../../share/moeinfer/<dir>/<file> (an installed bin/moeinfer) that exists; else the
// first, so that an error names where the file was looked for first.
std::string bundled_file(const std::string& dir, const std::string& file);

}  // namespace moe
