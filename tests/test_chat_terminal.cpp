// Drives `moeinfer chat` through a pseudo-terminal (forkpty) on a random-weight fixture model:
// the text is noise, so the test checks the protocol: the prompt appears, replies stream, the
// second turn reuses the KV cache, /reset clears it, Ctrl-C stops a long reply and the prompt
// returns, Ctrl-C at the prompt, /exit and EOF quit. The prefix reuse itself is checked on the
// library: logits after reusing a cached prefix equal those of a fresh evaluation.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "fixtures.h"
#include "models/model.h"
#include "runtime/session.h"

namespace {

const std::string kModel = std::string(MOE_FIXTURES_DIR) + "/models/qwen3moe-f32.gguf";

class PtyProcess {
public:
    explicit PtyProcess(const std::vector<std::string>& args) {
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        pid_ = forkpty(&fd_, nullptr, nullptr, nullptr);
        if (pid_ == 0) {
            execv(argv[0], argv.data());
            _exit(127);
        }
    }
    ~PtyProcess() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (fd_ >= 0) close(fd_);
    }
    bool started() const { return pid_ > 0 && fd_ >= 0; }

    void send(const std::string& s) {
        ASSERT_EQ(write(fd_, s.data(), s.size()), ssize_t(s.size()));
    }

    // Reads until `needle` appears at or after `from`; returns its offset or npos on timeout/EOF.
    size_t wait_for(const std::string& needle, size_t from, double timeout_s = 120) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        while (true) {
            const size_t p = out_.find(needle, from);
            if (p != std::string::npos) return p;
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || !read_some(int(left.count()))) return std::string::npos;
        }
    }

    // Reads until the output grows past `size` (reply tokens streaming).
    bool wait_growth(size_t size, double timeout_s = 60) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        while (out_.size() <= size) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || !read_some(int(left.count()))) return false;
        }
        return true;
    }

    // Waits for the process to exit; returns its wait status or -1 on timeout.
    int wait_exit(double timeout_s = 60) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            const pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                return status;
            }
            read_some(50);  // drain so the child never blocks on a full pty
        }
        return -1;
    }

    const std::string& output() const { return out_; }

private:
    pid_t pid_ = -1;
    int fd_ = -1;
    bool exited_ = false;
    std::string out_;

    bool read_some(int timeout_ms) {
        pollfd p{fd_, POLLIN, 0};
        const int r = poll(&p, 1, timeout_ms);
        if (r <= 0) return r == 0 && timeout_ms > 0 ? true : false;
        char buf[4096];
        const ssize_t n = read(fd_, buf, sizeof buf);
        if (n <= 0) return false;  // EIO once the child has exited
        out_.append(buf, size_t(n));
        return true;
    }
};

// "[prompt: N new tokens (M cached), ...]" -> M, or -1.
long cached_count(const std::string& out, size_t from) {
    static const std::regex re(R"(\[prompt: (\d+) new tokens \((\d+) cached\))");
    std::smatch m;
    const std::string tail = out.substr(from);
    if (!std::regex_search(tail, m, re)) return -1;
    return std::stol(m[2]);
}

std::vector<std::string> chat_args(std::vector<std::string> extra) {
    std::vector<std::string> a = {MOE_BINARY, "chat", "-m", kModel, "-t", "1", "--seed", "7"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

#define SKIP_WITHOUT_FIXTURE()                                                  \
    if (!std::filesystem::exists(kModel)) GTEST_SKIP() << kModel << " missing"

}  // namespace

TEST(ChatTerminal, TwoTurnsResetAndCtrlCAtPrompt) {
    SKIP_WITHOUT_FIXTURE();
    PtyProcess p(chat_args({"-n", "8", "--system", "Be brief."}));
    ASSERT_TRUE(p.started());
    size_t at = p.wait_for("> ", 0);
    ASSERT_NE(at, std::string::npos) << p.output();
    EXPECT_NE(p.output().find("chat format:"), std::string::npos) << p.output();

    // Turn 1: the reply streams, then the speed line and the prompt come back.
    p.send("hello there\n");
    size_t stats1 = p.wait_for("tok/s]", at + 2);
    ASSERT_NE(stats1, std::string::npos) << p.output();
    EXPECT_EQ(cached_count(p.output(), at), 0) << p.output();
    at = p.wait_for("> ", stats1);
    ASSERT_NE(at, std::string::npos) << p.output();

    // Turn 2 reuses the cached conversation: only the new turn's tokens are evaluated.
    p.send("and a second question\n");
    size_t stats2 = p.wait_for("tok/s]", at + 2);
    ASSERT_NE(stats2, std::string::npos) << p.output();
    EXPECT_GT(cached_count(p.output(), at), 0) << p.output();
    at = p.wait_for("> ", stats2);
    ASSERT_NE(at, std::string::npos) << p.output();

    // /reset clears the conversation and the cache.
    p.send("/reset\n");
    at = p.wait_for("(conversation cleared)", at);
    ASSERT_NE(at, std::string::npos) << p.output();
    at = p.wait_for("> ", at);
    ASSERT_NE(at, std::string::npos) << p.output();
    p.send("fresh start\n");
    size_t stats3 = p.wait_for("tok/s]", at + 2);
    ASSERT_NE(stats3, std::string::npos) << p.output();
    EXPECT_EQ(cached_count(p.output(), at), 0) << p.output();
    at = p.wait_for("> ", stats3);
    ASSERT_NE(at, std::string::npos) << p.output();

    // Ctrl-C at the prompt quits with the shell's status for SIGINT (cmd_chat's handler).
    p.send("\x03");
    const int status = p.wait_exit();
    ASSERT_NE(status, -1) << p.output();
    ASSERT_TRUE(WIFEXITED(status)) << "status " << status << "\n" << p.output();
    EXPECT_EQ(WEXITSTATUS(status), 130);
}

TEST(ChatTerminal, CtrlCStopsLongReplyThenExit) {
    SKIP_WITHOUT_FIXTURE();
    PtyProcess p(chat_args({"-n", "1000000", "--ignore-eos", "-c", "4096", "--temp", "1"}));
    ASSERT_TRUE(p.started());
    size_t at = p.wait_for("> ", 0);
    ASSERT_NE(at, std::string::npos) << p.output();
    p.send("tell me a very long story\n");
    const size_t echo = p.wait_for("story", at);
    ASSERT_NE(echo, std::string::npos) << p.output();
    // Let a few reply bytes stream, then interrupt.
    ASSERT_TRUE(p.wait_growth(echo + 64)) << p.output();
    p.send("\x03");
    const size_t stopped = p.wait_for("[reply stopped]", echo);
    ASSERT_NE(stopped, std::string::npos) << p.output();
    at = p.wait_for("> ", stopped);
    ASSERT_NE(at, std::string::npos) << p.output();

    // The session is still alive: /exit quits normally.
    p.send("/exit\n");
    const int status = p.wait_exit();
    ASSERT_NE(status, -1) << p.output();
    ASSERT_TRUE(WIFEXITED(status)) << p.output();
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ChatTerminal, EofQuits) {
    SKIP_WITHOUT_FIXTURE();
    PtyProcess p(chat_args({"-n", "4"}));
    ASSERT_TRUE(p.started());
    ASSERT_NE(p.wait_for("> ", 0), std::string::npos) << p.output();
    p.send("\x04");  // Ctrl-D on an empty line: end of input
    const int status = p.wait_exit();
    ASSERT_NE(status, -1) << p.output();
    ASSERT_TRUE(WIFEXITED(status)) << p.output();
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

// What the chat's second turn does: keep the cached tokens that the new prompt shares, drop the
// rest (here a reply the new prompt renders differently), evaluate only the new tokens. The last
// logits must be those of evaluating the whole new prompt in a fresh session.
TEST(ChatPromptCache, ReusedPrefixGivesTheLogitsOfAFreshEvaluation) {
    SKIP_WITHOUT_FIXTURE();
    auto model = moe::load_model(kModel);
    ASSERT_TRUE(model.ok()) << model.message();
    const auto ids = moe::test::load_ref("qwen3moe")["tokens"].get<std::vector<int32_t>>();
    ASSERT_GE(ids.size(), 20u);
    // Turn 1: a prompt of 10 tokens and a 4-token reply, one token at a time as decoding does.
    const std::vector<int32_t> turn1(ids.begin(), ids.begin() + 10);
    const std::vector<int32_t> reply(ids.begin() + 10, ids.begin() + 14);
    // Turn 2 keeps the prompt and the first 2 reply tokens, then differs.
    const size_t shared = 12;
    std::vector<int32_t> turn2(ids.begin(), ids.begin() + shared);
    turn2.insert(turn2.end(), ids.rbegin(), ids.rbegin() + 6);

    moe::SessionOptions so;
    so.n_threads = 1;
    so.n_ctx = 64;
    so.deterministic = true;  // same kernels whatever the batch size
    moe::Session cached(**model, so);
    ASSERT_TRUE(cached.eval_tokens(turn1, false).ok());
    for (int32_t t : reply) ASSERT_TRUE(cached.eval_tokens(std::span(&t, 1), false).ok());
    ASSERT_EQ(cached.n_past(), 14);
    cached.truncate(0, int(shared));
    auto reused = cached.eval_tokens(std::span(turn2).subspan(shared), false);
    ASSERT_TRUE(reused.ok()) << reused.message();

    moe::Session fresh_s(**model, so);
    auto fresh = fresh_s.eval_tokens(turn2, false);
    ASSERT_TRUE(fresh.ok()) << fresh.message();
    ASSERT_EQ(reused->size(), fresh->size());
    // The same rows through the same kernels in another grouping: only f32 rounding differs.
    EXPECT_LT(moe::test::max_rel(*reused, *fresh), 1e-5);
}
