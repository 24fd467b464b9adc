// ServeChild: fork + execv of /proc/self/exe; the child's stderr is read by a thread that keeps
// its last line (for errors) and finds the "listening on http://HOST:PORT" line.
#include "analysis/serve_child.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <regex>
#include <thread>

#include "core/bundled_file.h"

namespace moe {

struct ServeChild::Drain {
    FILE* f = nullptr;
    std::thread t;
    std::mutex mu;
    std::condition_variable cv;
    int port = 0;
    bool eof = false;
    std::string last_line;

    void run() {
        const std::regex re("listening on http://[^:]+:(\\d+)");
        char line[4096];
        while (fgets(line, sizeof line, f)) {
            std::string s(line);
            while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
            std::smatch m;
            std::lock_guard lk(mu);
            if (port == 0 && std::regex_search(s, m, re)) port = std::stoi(m[1]);
            if (!s.empty()) last_line = s;
            cv.notify_all();
        }
        std::lock_guard lk(mu);
        eof = true;
        cv.notify_all();
    }
};

Result<std::unique_ptr<ServeChild>> ServeChild::start(const std::vector<std::string>& args,
                                                      double ready_s) {
    const auto exe = self_exe_path();
    if (!exe) return make_error("cannot find this program's path (/proc/self/exe)");
    std::vector<std::string> argv = {*exe, "serve", "--host", "127.0.0.1", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return make_error("pipe: {}", std::strerror(errno));
    const pid_t pid = fork();
    if (pid < 0) return make_error("fork: {}", std::strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 2);
        const int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) dup2(devnull, 0), dup2(devnull, 1);
        std::vector<char*> av;
        for (auto& a : argv) av.push_back(a.data());
        av.push_back(nullptr);
        execv(av[0], av.data());
        _exit(127);
    }
    close(fds[1]);
    std::unique_ptr<ServeChild> c(new ServeChild());
    c->pid_ = pid;
    c->drain_ = std::make_unique<Drain>();
    c->drain_->f = fdopen(fds[0], "r");
    Drain& d = *c->drain_;
    d.t = std::thread([&d] { d.run(); });

    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(ready_s * 1000));
    auto fail = [&](const std::string& why) -> Error {
        std::string last;
        {
            std::lock_guard lk(d.mu);
            last = d.last_line;
        }
        c->stop();
        return make_error("moeinfer serve {}{}", why, last.empty() ? "" : ": " + last);
    };
    {
        std::unique_lock lk(d.mu);
        d.cv.wait_until(lk, deadline, [&] { return d.port > 0 || d.eof; });
        c->port_ = d.port;
    }
    if (c->port_ == 0) return fail("did not start listening");
    httplib::Client cli("127.0.0.1", c->port_);
    cli.set_connection_timeout(std::chrono::seconds(2));
    cli.set_read_timeout(std::chrono::seconds(5));
    while (std::chrono::steady_clock::now() < deadline) {
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            c->pid_ = -1;
            c->status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return fail("exited while loading");
        }
        auto r = cli.Get("/health");
        if (r && r->status == 200) return c;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return fail("was not ready in time");
}

int ServeChild::stop() {
    if (pid_ > 0) {
        kill(pid_, SIGTERM);
        int st = 0;
        waitpid(pid_, &st, 0);
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        pid_ = -1;
    }
    if (drain_ && drain_->t.joinable()) {
        drain_->t.join();
        fclose(drain_->f);
    }
    return status_;
}

ServeChild::~ServeChild() {
    stop();
}

}  // namespace moe
