// `moeinfer serve --port 0 ...` as a child process of this binary, for bench-serve -m and
// compare --serve: started, waited for until /health says ready, stopped with SIGTERM.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace moe {

class ServeChild {
  public:
    // Runs `<this binary> serve --host 127.0.0.1 --port 0 <args>` and waits (up to ready_s)
    // until it is listening and its models are loaded. The error names the child's last
    // stderr line when it exits first.
    static Result<std::unique_ptr<ServeChild>> start(const std::vector<std::string>& args,
                                                     double ready_s = 600);
    ~ServeChild();  // stop()
    // SIGTERM and wait; the child's exit status (0 after a clean stop).
    int stop();
    int port() const { return port_; }

    ServeChild(const ServeChild&) = delete;
    ServeChild& operator=(const ServeChild&) = delete;

  private:
    ServeChild() = default;
    struct Drain;
    pid_t pid_ = -1;
    int port_ = 0;
    int status_ = -1;
    std::unique_ptr<Drain> drain_;
};

}  // namespace moe
