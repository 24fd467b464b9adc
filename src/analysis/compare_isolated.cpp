// measure_model in a forked child: the child measures and writes its ModelMeasures as JSON to a
// pipe, so that the peak RSS reported (VmHWM) is that model's alone.
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "analysis/compare_measure.h"

namespace moe {

using nlohmann::json;

ModelMeasures measure_model_isolated(const std::string& path, const CompareOptions& o) {
    int fds[2];
    if (pipe(fds) != 0) return measure_model(path, o);
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return measure_model(path, o);
    }
    if (pid == 0) {
        close(fds[0]);
        ModelMeasures m = measure_model(path, o);
        m.rss_isolated = true;
        const std::string s = to_json(m).dump(-1, ' ', false, json::error_handler_t::replace);
        size_t off = 0;
        while (off < s.size()) {
            const ssize_t w = write(fds[1], s.data() + off, s.size() - off);
            if (w <= 0) break;
            off += size_t(w);
        }
        close(fds[1]);
        _exit(off == s.size() ? 0 : 3);
    }
    close(fds[1]);
    std::string buf;
    char tmp[65536];
    for (;;) {
        const ssize_t n = read(fds[0], tmp, sizeof tmp);
        if (n > 0) {
            buf.append(tmp, size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ModelMeasures r;
    r.path = path;
    if (WIFSIGNALED(status)) {
        r.error = fmt::format("measuring {} crashed (signal {})", path, WTERMSIG(status));
        return r;
    }
    const json j = json::parse(buf, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
        r.error = fmt::format("measuring {} failed (child exit status {})", path,
                              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return r;
    }
    auto m = measures_from_json(j);
    if (!m) {
        r.error = fmt::format("measuring {}: {}", path, m.message());
        return r;
    }
    return std::move(*m);
}

}  // namespace moe
