// Session::create refuses what the machine cannot hold (a KV pool beyond available memory,
// threads beyond what the system allows) with an error naming the figures, and every CLI path
// that makes a session ends such input in one `error:` line instead of an abort.
#include <gtest/gtest.h>

#include <thread>

#include "core/sysinfo.h"
#include "fixtures.h"
#include "models/model.h"
#include "runtime/session.h"
#include "subprocess.h"

namespace moe {
namespace {

TEST(SessionCreate, KvPoolBeyondAvailableMemoryNamesBytesAndContext) {
    auto m = load_model(test::gguf_path("llama", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    SessionOptions so;
    so.n_ctx = 1000000000;
    auto s = Session::create(**m, so);
    ASSERT_FALSE(s.ok());
    // llama fixture: 2 layers x (K + V) x 2 heads x 32 x 4 bytes = 1024 bytes per position.
    EXPECT_NE(s.message().find("1024000000000 bytes"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("context 1000000000"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("-c"), std::string::npos) << s.message();
    // The pool size, not the context, is what counts: a small pool under a huge context is fine.
    const auto mi = read_meminfo();
    ASSERT_TRUE(mi.has_value());
    so.n_ctx = int(std::min<uint64_t>(mi->available / 1024 / 4, 1 << 30));
    so.kv_tokens = 4096;
    EXPECT_TRUE(Session::create(**m, so).ok());
    so.n_seq = 1 << 20;  // the default pool, context x sequences
    so.kv_tokens = 0;
    auto many = Session::create(**m, so);
    ASSERT_FALSE(many.ok());
    EXPECT_NE(many.message().find("sequences"), std::string::npos) << many.message();
}

TEST(SessionCreate, ThreadsAreCapped) {
    auto m = load_model(test::gguf_path("llama", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_EQ(Session::max_threads(),
              std::min(1024, 4 * int(std::max(1u, std::thread::hardware_concurrency()))));
    SessionOptions so;
    so.n_ctx = 32;
    so.n_threads = Session::max_threads() + 1;
    auto s = Session::create(**m, so);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(std::to_string(so.n_threads) + " threads"), std::string::npos)
        << s.message();
    so.n_threads = -1;
    EXPECT_FALSE(Session::create(**m, so).ok());
    so.n_threads = 2;
    auto ok = Session::create(**m, so);
    ASSERT_TRUE(ok.ok()) << ok.message();
    EXPECT_EQ((*ok)->pool().size(), 2);
}

size_t error_lines(const std::string& out) {
    size_t n = out.rfind("error: ", 0) == 0 ? 1 : 0;
    for (size_t i = out.find("\nerror: "); i != std::string::npos; i = out.find("\nerror: ", i + 1))
        ++n;
    return n;
}

TEST(SessionCreateCli, HugeContextAndThreadCountsEndInOneErrorLine) {
    const std::string model = test::gguf_path("llama", "f32");
    const std::string text = std::string(MOE_SOURCE_DIR) + "/models/demo-val.txt";
    const std::string out = test::temp_path("limits.f32");
    // The whole output is the error line.
    for (const std::string& args : {
             "run -m " + model + " -p hi -n 2 -c 1000000000",
             "run -m " + model + " -p hi -n 2 -t 100000",
             "chat -m " + model + " -c 1000000000",
             "chat -m " + model + " -t 100000",
             "logits -m " + model + " --tokens 1,2 -o " + out + " -t 100000",
             "bench -m " + model + " -p 4 -n 2 -r 1 -t 100000",
             "eval -m " + model + " -f " + text + " -c 1000000000",
             "synth --like olmoe-1b-7b --layers 1 -t 100000 -o " + test::temp_path("limits.gguf"),
         }) {
        const auto r = test::run_moeinfer(args);
        test::expect_one_error_line(r, args);
    }
    // Commands that print progress first (eval's text summary, compare's per-model report).
    for (const std::string& args : {
             "eval -m " + model + " -f " + text + " -c 64 -t 100000",
             "compare " + model + " " + model + " -t 100000 --no-isolate -o " +
                 test::temp_path("limits_report"),
         }) {
        const auto r = test::run_moeinfer(args);
        const std::string out = r.all();
        EXPECT_EQ(r.code, 1) << args << "\n" << out;
        EXPECT_EQ(error_lines(out), 1u) << args << "\n" << out;
        EXPECT_NE(out.find("100000 threads"), std::string::npos) << args << "\n" << out;
    }
}

}  // namespace
}  // namespace moe
