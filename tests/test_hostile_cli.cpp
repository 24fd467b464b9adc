// Hostile command lines: special files, full devices, extreme sizes and non-finite numbers.
// Each must end in exactly one `error:` line and a non-zero exit, in bounded time and memory,
// and a failed write must leave no truncated file behind.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/input_file.h"
#include "fixtures.h"
#include "subprocess.h"

namespace fs = std::filesystem;

namespace moe {
namespace {

// Under `timeout`, which bounds a hang (the FIFO cases once blocked forever) with exit 124.
// stdout_to: where stdout goes instead of the captured output (stderr is still captured).
test::ProcessResult run(const std::string& args, int seconds = 60,
                        const std::string& stdout_to = "") {
    std::vector<std::string> argv = {"/usr/bin/timeout", std::to_string(seconds), MOE_BINARY};
    for (auto& a : test::split_args(args)) argv.push_back(std::move(a));
    return test::run_process(argv, stdout_to);
}

// One `error:` line naming `part`, and a failure exit (not a timeout or a signal).
void expect_one_error(const test::ProcessResult& r, const std::string& part) {
    const std::string out = r.all();
    EXPECT_NE(r.code, 0) << out;
    EXPECT_NE(r.code, 124) << "timed out: " << out;
    EXPECT_LT(r.code, 124) << "killed: " << out;
    size_t n_err = 0;
    for (size_t p = out.find("error:"); p != std::string::npos; p = out.find("error:", p + 1))
        ++n_err;
    EXPECT_EQ(n_err, 1u) << out;
    EXPECT_NE(out.find(part), std::string::npos) << "expected '" << part << "' in: " << out;
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

TEST(HostileCli, CompareChecksItsSettingsBeforeMeasuring) {
    // A thread count the machine refuses is one error before any model is measured or any report
    // started (it was a warning per model, then an error after both reports were written).
    const std::string out = tmp("cmp");
    for (const std::string& t : {"-1", "100000"}) {
        const auto r = run("compare -t " + t + " -n 1 --ppl-windows 1 -o " + out);
        expect_one_error(r, t + " threads");
        EXPECT_EQ(r.all().find("measuring"), std::string::npos) << r.all();
        EXPECT_FALSE(fs::exists(out + ".md"));
    }
}

TEST(HostileCli, InputFileReaderRefusesSpecialFiles) {
    EXPECT_NE(read_input_file("/dev/zero").message().find("not a regular file"), std::string::npos);
    EXPECT_NE(read_input_file("/").message().find("not a regular file"), std::string::npos);
    EXPECT_NE(read_input_file("/nonexistent").message().find("/nonexistent"), std::string::npos);
}

}  // namespace
}  // namespace moe
