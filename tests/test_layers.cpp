// The layering of docs/DEVELOPERS.md, checked on the sources: every `#include "dir/..."` of a
// file under src/<layer>/ names a layer that layer may use. Keep this table and the document's
// equal.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

namespace {

const std::map<std::string, std::set<std::string>>& allowed() {
    static const std::map<std::string, std::set<std::string>> a = [] {
        std::map<std::string, std::set<std::string>> m;
        m["core"] = {};
        m["gguf"] = {"core"};
        m["formats"] = {"core", "gguf"};
        m["kernels"] = {"core"};
        m["tokenizer"] = {"core", "gguf", "formats"};
        m["chat"] = {"core", "gguf", "formats", "tokenizer"};
        m["models"] = {"core", "gguf", "formats", "kernels"};
        m["parallel"] = {"core", "gguf", "formats", "kernels", "models"};
        m["runtime"] = {"core", "gguf", "formats", "kernels", "models", "tokenizer", "chat"};
        m["analysis"] = m["runtime"];
        m["analysis"].insert("runtime");
        m["server"] = m["runtime"];
        m["server"].insert("runtime");
        m["cli"] = m["analysis"];
        m["cli"].insert("parallel");
        for (const char* up : {"analysis", "server"}) m["cli"].insert(up);
        return m;
    }();
    return a;
}

TEST(Layers, IncludesFollowDevelopersMd) {
    namespace fs = std::filesystem;
    const fs::path src = fs::path(MOE_SOURCE_DIR) / "src";
    const std::regex include_re(R"re(^\s*#\s*include\s+"([a-z_0-9]+)/)re");
    int files = 0;
    for (const auto& e : fs::recursive_directory_iterator(src)) {
        if (!e.is_regular_file()) continue;
        const std::string layer = fs::relative(e.path(), src).begin()->string();
        const auto rule = allowed().find(layer);
        ASSERT_NE(rule, allowed().end()) << "src/" << layer << " is not in DEVELOPERS.md's layers";
        std::ifstream f(e.path());
        std::string line;
        for (int n = 1; std::getline(f, line); ++n) {
            std::smatch m;
            if (!std::regex_search(line, m, include_re) || m[1] == layer) continue;
            EXPECT_TRUE(rule->second.count(m[1]))
                << fs::relative(e.path(), src).string() << ":" << n << " includes " << m[1] << "/";
        }
        ++files;
    }
    EXPECT_GT(files, 50);
}

}  // namespace
