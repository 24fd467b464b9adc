#include "subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace moe::test {

namespace {

// Reads both pipes until both are closed, so a child filling one of them never blocks.
void drain(int out_fd, int err_fd, std::string& out, std::string& err) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    std::string* sinks[2] = {&out, &err};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
            if (n > 0) {
                sinks[i]->append(buf, size_t(n));
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& stdout_path) {
    ProcessResult r;
    int out_pipe[2], err_pipe[2];
    if (argv.empty() || pipe2(out_pipe, O_CLOEXEC) != 0) {
        ADD_FAILURE() << "cannot start a child process";
        return r;
    }
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        ADD_FAILURE() << "cannot start a child process";
        return r;
    }
    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
        const int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, STDIN_FILENO);
        const int out_fd = stdout_path.empty()
                               ? out_pipe[1]
                               : open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out_fd < 0) _exit(126);
        dup2(out_fd, STDOUT_FILENO);
        dup2(err_pipe[1], STDERR_FILENO);
        execv(cargv[0], cargv.data());
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (pid < 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        ADD_FAILURE() << "fork failed: " << std::strerror(errno);
        return r;
    }
    drain(out_pipe[0], err_pipe[0], r.out, r.err);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) {
        r.code = WEXITSTATUS(status);
        if (r.code == 127) ADD_FAILURE() << "cannot execute " << argv[0];
        if (r.code == 126 && !stdout_path.empty())
            ADD_FAILURE() << "cannot open " << stdout_path << " for the child's stdout";
    } else if (WIFSIGNALED(status)) {
        r.signal = WTERMSIG(status);
        ADD_FAILURE() << argv[0] << " was killed by signal " << r.signal << " ("
                      << strsignal(r.signal) << ")\nstderr:\n"
                      << r.err;
    }
    return r;
}

std::vector<std::string> split_args(std::string_view line) {
    std::vector<std::string> args;
    std::string cur;
    bool in_word = false, quoted = false;
    for (char c : line) {
        if (c == '"') {
            quoted = !quoted;
            in_word = true;
        } else if (c == ' ' && !quoted) {
            if (in_word) args.push_back(std::move(cur));
            cur.clear();
            in_word = false;
        } else {
            cur += c;
            in_word = true;
        }
    }
    if (in_word) args.push_back(std::move(cur));
    return args;
}

ProcessResult run_moeinfer(std::string_view args) {
    std::vector<std::string> argv = {MOE_BINARY};
    for (auto& a : split_args(args)) argv.push_back(std::move(a));
    return run_process(argv);
}

void expect_one_error_line(const ProcessResult& r, std::string_view what) {
    const std::string out = r.all();
    EXPECT_EQ(r.code, 1) << what << "\n" << out;
    EXPECT_EQ(out.rfind("error: ", 0), 0u) << what << "\n" << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << what << "\n" << out;
}

}  // namespace moe::test
