// `moeinfer serve --port 0` on the demo model as a child process, spoken to over HTTP: the real
// scheduler behind the routes (errors, auth, body limit, stalled clients, cancel mid-stream).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "raw_socket.h"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using moe::test::connect_raw;

// The server process; the first stderr line it prints names the port.
class ServeProcess {
  public:
    explicit ServeProcess(std::vector<std::string> extra) {
        int fds[2];
        EXPECT_EQ(pipe(fds), 0);
        std::vector<std::string> args = {
            MOE_BINARY, "serve", "--port",
            "0",        "-m",    std::string(MOE_SOURCE_DIR) + "/models/demo-moe.gguf"};
        args.insert(args.end(), extra.begin(), extra.end());
        pid_ = fork();
        if (pid_ == 0) {
            dup2(fds[1], 2);
            close(fds[0]);
            close(fds[1]);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            execv(argv[0], argv.data());
            _exit(127);
        }
        close(fds[1]);
        err_ = fdopen(fds[0], "r");
        char line[512];
        const std::regex re("listening on http://127\\.0\\.0\\.1:(\\d+)");
        while (fgets(line, sizeof line, err_)) {
            std::cmatch m;
            if (std::regex_search(line, m, re)) {
                port_ = std::stoi(m[1]);
                break;
            }
        }
        // Drain the rest of stderr so the child never blocks on a full pipe.
        drain_ = std::thread([f = err_] {
            char buf[512];
            while (fgets(buf, sizeof buf, f)) {
            }
        });
        for (int i = 0; i < 300 && port_ > 0; ++i) {
            auto r = client().Get("/health");
            if (r && r->status == 200) break;
            std::this_thread::sleep_for(20ms);
        }
    }
    ~ServeProcess() { stop(); }
    int stop() {
        if (pid_ <= 0) return status_;
        kill(pid_, SIGTERM);
        int st = 0;
        waitpid(pid_, &st, 0);
        pid_ = -1;
        drain_.join();
        fclose(err_);
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
    }
    int port() const { return port_; }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port_);
        c.set_read_timeout(20, 0);
        return c;
    }

  private:
    pid_t pid_ = -1;
    FILE* err_ = nullptr;
    std::thread drain_;
    int port_ = -1;
    int status_ = -1;
};

double metric(httplib::Client& c, const std::string& name) {
    const std::string body = c.Get("/metrics")->body;
    const std::string key = "moeinfer_" + name + "{model=\"demo-moe\"} ";
    const size_t p = body.find(key);
    return p == std::string::npos ? -1 : std::stod(body.substr(p + key.size()));
}

TEST(ServerE2E, AnswersAndRefusesLikeOpenAI) {
    ServeProcess s({"--api-key", "k1", "--max-body", "10000"});
    ASSERT_GT(s.port(), 0);
    auto c = s.client();
    const httplib::Headers auth = {{"Authorization", "Bearer k1"}};
    EXPECT_EQ(c.Get("/health")->status, 200);
    EXPECT_EQ(c.Get("/v1/models")->status, 401);
    EXPECT_EQ(c.Get("/v1/models", {{"Authorization", "Bearer k2"}})->status, 401);
    auto nf = c.Get("/nowhere", auth);
    EXPECT_EQ(nf->status, 404);
    EXPECT_TRUE(json::parse(nf->body)["error"].contains("message"));
    auto bad = c.Post("/v1/chat/completions", auth, "{\"messages\":", "application/json");
    EXPECT_EQ(bad->status, 400);
    auto big = c.Post("/v1/completions", auth, std::string(20000, ' '), "application/json");
    ASSERT_TRUE(big);
    EXPECT_EQ(big->status, 413);
    auto ok = c.Post("/v1/chat/completions", auth,
                     R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":6})",
                     "application/json");
    ASSERT_EQ(ok->status, 200) << ok->body;
    const json j = json::parse(ok->body);
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 6);
    EXPECT_EQ(s.stop(), 0);  // SIGTERM: clean exit
}

TEST(ServerE2E, StalledClientsAndCancelledStreams) {
    ServeProcess s({"-np", "2", "--http-threads", "12"});
    ASSERT_GT(s.port(), 0);
    std::vector<int> stalled;
    for (int i = 0; i < 8; ++i) {
        const int fd = connect_raw(s.port());
        ASSERT_GE(fd, 0);
        if (i % 2) {
            const std::string half = "POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{";
            ASSERT_GT(::send(fd, half.data(), half.size(), 0), 0);
        }
        stalled.push_back(fd);
    }
    auto c = s.client();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":3})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
    for (int fd : stalled) ::close(fd);

    // Hang up after a few events of a long stream: the sequence and its pages are freed.
    const double cancelled0 = metric(c, "requests_cancelled_total");
    int events = 0;
    double live_during = 0;
    {
        auto cc = s.client();
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/completions";
        req.body = R"({"prompt":"Once upon a time","max_tokens":200,"stream":true})";
        req.set_header("Content-Type", "application/json");
        req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
            if (++events == 3) {
                auto m = s.client();
                live_during = metric(m, "kv_pages_used") - metric(m, "kv_pages_cached");
            }
            return events < 3;
        };
        cc.send(req);
    }
    EXPECT_GT(live_during, 0);
    double running = -1, live = -1;
    for (int i = 0; i < 200; ++i) {
        running = metric(c, "running_sequences");
        live = metric(c, "kv_pages_used") - metric(c, "kv_pages_cached");
        if (running == 0 && live == 0) break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(running, 0);
    EXPECT_EQ(live, 0);
    EXPECT_EQ(metric(c, "requests_cancelled_total"), cancelled0 + 1);
}

}  // namespace
