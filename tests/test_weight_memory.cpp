// Weight files mapped or loaded into huge-page memory: same bytes, same logits, clear errors.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/mapped_file.h"
#include "core/sysinfo.h"
#include "fixtures.h"
#include "formats/model_source.h"
#include "gguf/gguf.h"
#include "models/model.h"
#include "runtime/session.h"

namespace moe {
namespace {

TEST(WeightMemory, LoadedBytesEqualMappedBytes) {
    const std::string path = test::gguf_path("olmoe", "q4_k_m");
    auto m = MappedFile::open(path, WeightMemory::Map);
    auto l = MappedFile::open(path, WeightMemory::Load);
    ASSERT_TRUE(m.ok()) << m.message();
    ASSERT_TRUE(l.ok()) << l.message();
    EXPECT_FALSE((*m)->loaded());
    EXPECT_TRUE((*l)->loaded());
    ASSERT_EQ((*m)->size(), (*l)->size());
    EXPECT_EQ(std::memcmp((*m)->data(), (*l)->data(), (*m)->size()), 0);
    // Loaded data starts on a 2 MiB boundary (so huge pages can back it) and keeps GGUF's
    // 32-byte tensor alignment.
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*l)->data()) % (2u << 20), 0u);
}

// Auto: Load for files of at least 64 MiB that fit in half of MemAvailable, else Map.
TEST(WeightMemory, AutoChoiceCoversEveryBranch) {
    const uint64_t MiB = uint64_t(1) << 20, GiB = uint64_t(1) << 30;
    const struct {
        uint64_t file, available;
        WeightMemory want;
        const char* why;
    } cases[] = {
        {300 * 1024, 64 * GiB, WeightMemory::Map, "small file"},
        {64 * MiB - 1, 64 * GiB, WeightMemory::Map, "just below 64 MiB"},
        {64 * MiB, 64 * GiB, WeightMemory::Load, "64 MiB with room"},
        {8 * GiB, 16 * GiB, WeightMemory::Load, "exactly half of what is available"},
        {8 * GiB + 1, 16 * GiB, WeightMemory::Map, "more than half of what is available"},
        {40 * GiB, 16 * GiB, WeightMemory::Map, "larger than memory"},
        {1 * GiB, 0, WeightMemory::Map, "available memory unknown"},
    };
    for (const auto& c : cases)
        EXPECT_EQ(choose_weight_memory(c.file, c.available), c.want) << c.why;
}

TEST(WeightMemory, AutoMapsSmallFiles) {
    auto a = MappedFile::open(test::gguf_path("olmoe", "q4_k_m"), WeightMemory::Auto);
    ASSERT_TRUE(a.ok()) << a.message();
    EXPECT_FALSE((*a)->loaded());  // a few hundred KiB: below the 64 MiB threshold
}

// A 64 MiB file (sparse: no disk used) is loaded when this host has 128 MiB available.
TEST(WeightMemory, AutoLoadsLargeFilesThatFit) {
    const std::string path = test::temp_path("weights_64m.bin");
    {
        std::ofstream f(path, std::ios::binary);
        ASSERT_TRUE(f.good());
    }
    std::filesystem::resize_file(path, uint64_t(64) << 20);
    const auto mi = read_meminfo();
    ASSERT_TRUE(mi.has_value());
    auto a = MappedFile::open(path, WeightMemory::Auto);
    ASSERT_TRUE(a.ok()) << a.message();
    EXPECT_EQ((*a)->loaded(), mi->available >= (uint64_t(128) << 20)) << mi->available;
    a->reset();
    std::filesystem::remove(path);
}

// Map now includes the populate at open: same logits as the loaded copy.
TEST(WeightMemory, SameLogitsEitherWay) {
    const auto toks = test::load_ref("qwen3moe")["tokens"].get<std::vector<int32_t>>();
    std::vector<float> out[2];
    for (int i = 0; i < 2; ++i) {
        set_weight_memory(i == 0 ? WeightMemory::Map : WeightMemory::Load);
        auto model = load_model(test::gguf_path("qwen3moe", "q8_0"));
        ASSERT_TRUE(model.ok()) << model.message();
        SessionOptions so;
        so.n_threads = 2;
        so.n_ctx = 64;
        Session s(**model, so);
        auto r = s.eval_tokens(toks, true);
        ASSERT_TRUE(r.ok()) << r.message();
        out[i] = std::move(*r);
    }
    set_weight_memory(WeightMemory::Auto);
    EXPECT_EQ(out[0], out[1]);
}

// Resident bytes (page-table entries) of the mapping starting at `start`, from /proc/self/smaps.
uint64_t mapping_rss(const void* start) {
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool in = false;
    while (std::getline(smaps, line)) {
        uint64_t lo = 0;
        if (std::sscanf(line.c_str(), "%lx-", &lo) == 1 && line.find(' ') > line.find('-')) {
            in = lo == reinterpret_cast<uintptr_t>(start);
            continue;
        }
        uint64_t kb = 0;
        if (in && std::sscanf(line.c_str(), "Rss: %lu kB", &kb) == 1) return kb * 1024;
    }
    return 0;
}

// A mapped file that fits in memory is read in at open: every page is in the page tables before
// the first forward pass (else the first prompt pays the faults).
TEST(WeightMemory, MappedFileIsPopulatedAtOpen) {
    const std::string path = test::gguf_path("qwen3moe", "q8_0");
    auto m = MappedFile::open(path, WeightMemory::Map);
    ASSERT_TRUE(m.ok()) << m.message();
    ASSERT_FALSE((*m)->loaded());
    const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
    EXPECT_EQ(mapping_rss((*m)->data()), ((*m)->size() + page - 1) / page * page);
}

TEST(WeightMemory, PopulateOnlyWhatFitsInMemory) {
    const uint64_t GiB = uint64_t(1) << 30;
    EXPECT_TRUE(should_populate_mapping(4 * GiB, 16 * GiB));
    EXPECT_TRUE(should_populate_mapping(9 * GiB, 10 * GiB));
    EXPECT_FALSE(should_populate_mapping(10 * GiB, 10 * GiB));  // no room left for the rest
    EXPECT_FALSE(should_populate_mapping(32 * GiB, 24 * GiB));
    EXPECT_FALSE(should_populate_mapping(1 * GiB, 0));  // available memory unknown
}

// A file that shrinks under its mapping: populating it is an error naming the file, not a SIGBUS
// (touching the lost pages would kill the process).
TEST(WeightMemory, FileThatShrankWhilePopulatingIsAnError) {
    const std::string path = test::temp_path("weights_shrinks.bin");
    const size_t size = size_t(200) << 20;  // several 64 MiB chunks; sparse, no disk used
    {
        std::ofstream f(path, std::ios::binary);
        ASSERT_TRUE(f.good());
    }
    std::filesystem::resize_file(path, size);
    const int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    ASSERT_NE(p, MAP_FAILED);
    std::filesystem::resize_file(path, size_t(1) << 20);
    auto r = populate_mapping(static_cast<const uint8_t*>(p), size, path, nullptr);
    ::munmap(p, size);
    std::filesystem::remove(path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("'" + path + "' shrank to 1048576 bytes"), std::string::npos)
        << r.message();
}

TEST(WeightMemory, MissingFileIsAnError) {
    for (auto mode : {WeightMemory::Map, WeightMemory::Load}) {
        auto r = MappedFile::open("/nonexistent/x.gguf", mode);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.message().find("cannot open"), std::string::npos) << r.message();
    }
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// The mode is a load option (serve -m PATH,mmap|,no-mmap), independent of the process default.
TEST(WeightMemory, PerFileModeOverridesTheDefault) {
    const std::string path = test::gguf_path("olmoe", "q4_k_m");
    set_weight_memory(WeightMemory::Map);
    auto l = gguf::File::open(path, WeightMemory::Load);
    ASSERT_TRUE(l.ok()) << l.message();
    EXPECT_TRUE((*l)->loaded());
    set_weight_memory(WeightMemory::Load);
    auto m = gguf::File::open(path, WeightMemory::Map);
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_FALSE((*m)->loaded());
    auto d = gguf::File::open(path);  // the process default
    ASSERT_TRUE(d.ok()) << d.message();
    EXPECT_TRUE((*d)->loaded());
    set_weight_memory(WeightMemory::Auto);
    auto src = open_model_source(path, WeightMemory::Load);
    ASSERT_TRUE(src.ok()) << src.message();
}

}  // namespace
}  // namespace moe
