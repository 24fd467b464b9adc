// serve --expert-parallel: the leading process's Session steps, replayed by the followers. The
// scheduler touches the model only through Session::eval and Session::truncate, so a session
// given a channel (SessionOptions::mirror) first sends each of those calls as one message; the
// followers receive and execute them on their own Session (same model, options and call order,
// so the same KV pages and the same collective steps inside forward), until the shutdown
// message. The leader alone samples: every rank computes the same logits anyway.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "models/batch.h"

namespace moe {

class Session;

// How the leader's messages reach the followers (over MPI: cli/expert_parallel_options.cpp).
class StepChannel {
  public:
    virtual ~StepChannel() = default;
    // Processes taking part, the leader included.
    virtual int processes() const = 0;
    // Leader: sends msg to every follower. Follower: waits for the leader's next message
    // (sleeping between polls while idle) and stores it in msg.
    virtual Result<void> exchange(std::vector<uint8_t>& msg) = 0;
    // Ends every process of the job after printing `why`: after an error on any one of them the
    // others would wait forever in the step's collectives.
    [[noreturn]] virtual void abort(const std::string& why) = 0;
};

// The leader's messages (Session calls these when it has a mirror; send_shutdown ends the
// followers' loop, sent once the leader's last Session step is done).
Result<void> send_eval(StepChannel& ch, const Batch& b);
Result<void> send_truncate(StepChannel& ch, int seq, int n_keep);
Result<void> send_shutdown(StepChannel& ch);

// A follower: executes the leader's steps on s until the shutdown message. An error (a bad
// message, or a step that fails here) is returned; the caller aborts the job.
Result<void> follow_steps(StepChannel& ch, Session& s);

}  // namespace moe
