// core/sysinfo: the /proc readers on files written in the kernel's format, and on this process.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>

#include "core/sysinfo.h"
#include "fixtures.h"

namespace moe {
namespace {

TEST(Sysinfo, MeminfoParses) {
    const std::string p = test::temp_path("meminfo");
    std::ofstream(p) << "MemTotal:       16000 kB\nMemFree: 100 kB\nMemAvailable:    8000 kB\n";
    auto mi = read_meminfo(p);
    ASSERT_TRUE(mi.has_value());
    EXPECT_EQ(mi->total, 16000u * 1024u);
    EXPECT_EQ(mi->available, 8000u * 1024u);
    std::ofstream(p) << "MemFree: 100 kB\n";  // no MemTotal: not a meminfo
    EXPECT_FALSE(read_meminfo(p).has_value());
    EXPECT_FALSE(read_meminfo("/nonexistent/meminfo").has_value());
}

TEST(Sysinfo, ProcessMemoryParses) {
    const std::string p = test::temp_path("status");
    std::ofstream(p) << "Name:\tmoeinfer\nVmPeak:\t  900 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    "
                        "4096 kB\nThreads:\t3\n";
    auto pm = read_process_memory(p);
    ASSERT_TRUE(pm.has_value());
    EXPECT_EQ(pm->rss, 4096u * 1024u);
    EXPECT_EQ(pm->peak_rss, 5120u * 1024u);
    std::ofstream(p) << "Name:\tx\nVmRSS:\t 10 kB\n";  // no VmHWM
    EXPECT_FALSE(read_process_memory(p).has_value());
    EXPECT_FALSE(read_process_memory("/nonexistent/status").has_value());
}

// This process: touching 64 MiB raises the resident set and its peak by about that much.
TEST(Sysinfo, ThisProcessGrowsWhenItTouchesMemory) {
    const auto before = read_process_memory();
    ASSERT_TRUE(before.has_value());
    EXPECT_GT(before->rss, 0u);
    EXPECT_GE(before->peak_rss, before->rss);
    const size_t n = size_t(64) << 20;
    std::unique_ptr<volatile char[]> buf(new volatile char[n]);
    for (size_t i = 0; i < n; i += 4096) buf[i] = 1;
    const auto after = read_process_memory();
    ASSERT_TRUE(after.has_value());
    EXPECT_GE(after->rss, before->rss + n / 2);
    EXPECT_GE(after->peak_rss, after->rss);
    const auto mi = read_meminfo();
    ASSERT_TRUE(mi.has_value());
    EXPECT_GT(mi->total, 0u);
    EXPECT_LE(mi->available, mi->total);
}

}  // namespace
}  // namespace moe
