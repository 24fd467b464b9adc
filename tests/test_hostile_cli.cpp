// Hostile command lines: special files, full devices, extreme sizes and non-finite numbers.
// Each must end in exactly one `error:` line and a non-zero exit, in bounded time and memory,
// and a failed write must leave no truncated file behind.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/input_file.h"
#include "fixtures.h"

namespace fs = std::filesystem;

namespace moe {
namespace {

struct Run {
    int code;
    std::string out;  // stdout + stderr
};

// `timeout` bounds a hang (the FIFO cases once blocked forever); exit 124 then.
// stdout_to: where stdout goes instead of the captured output (stderr is still captured).
Run run(const std::string& args, int seconds = 60, const std::string& stdout_to = "") {
    const std::string cmd = "timeout " + std::to_string(seconds) + " " + MOE_BINARY + " " + args +
                            " 2>&1" + (stdout_to.empty() ? "" : " >" + stdout_to);
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf{};
    while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
    const int st = pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, out};
}

// One `error:` line naming `part`, and a failure exit (not a timeout or a signal).
void expect_one_error(const Run& r, const std::string& part) {
    EXPECT_NE(r.code, 0) << r.out;
    EXPECT_NE(r.code, 124) << "timed out: " << r.out;
    EXPECT_LT(r.code, 124) << "killed: " << r.out;
    size_t n_err = 0;
    for (size_t p = r.out.find("error:"); p != std::string::npos; p = r.out.find("error:", p + 1))
        ++n_err;
    EXPECT_EQ(n_err, 1u) << r.out;
    EXPECT_NE(r.out.find(part), std::string::npos) << "expected '" << part << "' in: " << r.out;
}

std::string tmp(const std::string& n) {
    return test::temp_path("hostile_" + n);
}

struct Fifo {
    std::string path = tmp("fifo");
    Fifo() {
        ::unlink(path.c_str());
        ::mkfifo(path.c_str(), 0600);
    }
    ~Fifo() { ::unlink(path.c_str()); }
};

const std::string kModel = test::gguf_path("llama", "f32");

TEST(HostileCli, FifoAsModelOrInputDoesNotBlock) {
    Fifo fifo;
    expect_one_error(run("logits -m " + fifo.path + " --tokens 1 -o " + tmp("x"), 20),
                     "not a regular file");
    expect_one_error(run("tokenize -m " + kModel + " -f " + fifo.path, 20), "not a regular file");
    expect_one_error(run("eval -m " + kModel + " -f " + fifo.path, 20), "not a regular file");
    expect_one_error(run("routing-report " + fifo.path + " -o " + tmp("r.html"), 20),
                     "not a regular file");
}

TEST(HostileCli, DevZeroAsTextIsRefused) {
    expect_one_error(run("tokenize -m " + kModel + " -f /dev/zero", 20), "not a regular file");
}

TEST(HostileCli, OversizedTextIsRefusedBeforeReading) {
    const std::string big = tmp("big.txt");
    { std::ofstream f(big); }
    fs::resize_file(big, (uint64_t(64) << 20) + 1);  // sparse: no disk used
    expect_one_error(run("tokenize -m " + kModel + " -f " + big, 20), "over the limit");
    fs::remove(big);
}

TEST(HostileCli, WritesToAFullDeviceFail) {
    if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
    expect_one_error(run("logits -m " + kModel + " --tokens 1,2 -o /dev/full"), "/dev/full");
    expect_one_error(run("logits -m " + test::gguf_path("mixtral", "f32") + " --tokens 1,2 -o " +
                         tmp("l.f32") + " --router-out /dev/full"),
                     "/dev/full");
    expect_one_error(run("run -m " + test::gguf_path("mixtral", "f32") +
                         " -p hi -n 2 --routing-stats /dev/full"),
                     "/dev/full");
    expect_one_error(
        run("tokenize -m " + kModel + " -f " + std::string(MOE_SOURCE_DIR) + "/README.md", 60,
            "/dev/full"),
        "cannot write");
    expect_one_error(run("inspect " + kModel, 60, "/dev/full"), "cannot write");
}

TEST(HostileCli, FailedWriteLeavesNoTruncatedFile) {
    // A finished file replaces the target only when complete: the old contents survive a
    // failure, and no temporary file is left next to it.
    const fs::path dir = tmp("atomic_dir");
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string target = (dir / "out.bin").string();
    ASSERT_TRUE(write_file_atomic(target, "old contents").ok());
    {
        auto f = AtomicFile::create(target);
        ASSERT_TRUE(f.ok()) << f.message();
        ASSERT_TRUE(f->write("partial").ok());
        // Destroyed without commit(): as when a later write fails.
    }
    std::ifstream in(target);
    std::string s((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(s, "old contents");
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 1);
    fs::remove_all(dir);
}

TEST(HostileCli, FreeSpaceIsCheckedBeforeLargeWrites) {
    const auto r = check_free_space(tmp("huge.gguf"), uint64_t(1) << 62);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("free"), std::string::npos) << r.message();
    EXPECT_TRUE(check_free_space(tmp("small.gguf"), 1).ok());
}

TEST(HostileCli, SynthRefusesZeroLayers) {
    const std::string out = tmp("zero.gguf");
    expect_one_error(run("synth --like mixtral-8x7b --type q4_0 -o " + out + " --layers 0", 30),
                     "--layers 0");
    EXPECT_FALSE(fs::exists(out));
}

TEST(HostileCli, BenchRefusesHugePromptAndGenLengths) {
    expect_one_error(run("bench -m " + kModel + " -p 100000 -n 1 -r 1", 30), "over the limit");
    expect_one_error(run("bench -m " + kModel + " -p 8 -n 100000 -r 1", 30), "over the limit");
    expect_one_error(run("bench -m " + kModel + " -p 8 -n 1 -r 0", 30), "-r 0");
}

TEST(HostileCli, NumericOptionsRejectNegativeNanAndHuge) {
    for (const std::string& v : {"-1", "nan", "inf", "1e300"})
        expect_one_error(run("inspect " + kModel + " --vram " + v), "--vram");
    for (const std::string& v : {"-1", "1000000000"}) {
        expect_one_error(run("inspect " + kModel + " -c " + v), "-c");
        expect_one_error(run("run -m " + kModel + " -p hi -n 1 -c " + v), "-c");
        expect_one_error(
            run("eval -m " + kModel + " -f " + std::string(MOE_SOURCE_DIR) + "/README.md -c " + v),
            "-c");
    }
}

TEST(HostileCli, InputFileReaderRefusesSpecialFiles) {
    EXPECT_NE(read_input_file("/dev/zero").message().find("not a regular file"), std::string::npos);
    EXPECT_NE(read_input_file("/").message().find("not a regular file"), std::string::npos);
    EXPECT_NE(read_input_file("/nonexistent").message().find("/nonexistent"), std::string::npos);
}

}  // namespace
}  // namespace moe
