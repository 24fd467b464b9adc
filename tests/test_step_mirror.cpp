// runtime/step_mirror.h without MPI: a leader session records the messages it sends (eval of a
// batch mixing sequences, truncate, eval again), a follower session replays them through
// follow_steps; afterwards both hold the same KV state: the same positions per sequence and the
// same logits, bit for bit, for a further batch. Bad messages are refused with an error.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>

#include "fixtures.h"
#include "runtime/session.h"
#include "runtime/step_mirror.h"

namespace moe {
namespace {

// Leader side: keeps what is sent. Follower side: hands out the kept messages in order.
class QueueChannel final : public StepChannel {
  public:
    explicit QueueChannel(bool leader) : leader_(leader) {}
    int processes() const override { return 2; }
    Result<void> exchange(std::vector<uint8_t>& msg) override {
        if (leader_) {
            queue.push_back(msg);
            return {};
        }
        if (queue.empty()) return make_error("no message");
        msg = queue.front();
        queue.pop_front();
        return {};
    }
    [[noreturn]] void abort(const std::string& why) override {
        ADD_FAILURE() << "abort: " << why;
        std::abort();
    }
    std::deque<std::vector<uint8_t>> queue;

  private:
    bool leader_;
};

SessionOptions options(StepChannel* mirror) {
    SessionOptions o;
    o.n_ctx = 64;
    o.n_seq = 3;
    o.n_threads = 1;
    o.mirror = mirror;
    return o;
}

TEST(StepMirror, FollowerReplaysTheLeadersSteps) {
    auto m = load_model(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(m) << m.message();
    QueueChannel sent(/*leader=*/true);
    auto leader = Session::create(**m, options(&sent));
    auto follower = Session::create(**m, options(nullptr));
    ASSERT_TRUE(leader && follower);

    Batch b;  // two sequences' prompts, interleaved
    for (int i = 0; i < 5; ++i) b.add(10 + i, i, 0, i == 4);
    for (int i = 0; i < 3; ++i) b.add(40 + i, i, 2, i == 2);
    ASSERT_TRUE((*leader)->eval(b));
    (*leader)->truncate(0, 2);  // sequence 0 keeps its first two positions
    Batch d;
    d.add(7, 2, 0, true);
    d.add(8, 3, 2, true);
    ASSERT_TRUE((*leader)->eval(d));
    ASSERT_TRUE(send_shutdown(sent));
    ASSERT_EQ(sent.queue.size(), 4u);

    QueueChannel replay(/*leader=*/false);
    replay.queue = sent.queue;
    ASSERT_TRUE(follow_steps(replay, **follower));
    EXPECT_TRUE(replay.queue.empty());
    for (int s = 0; s < 3; ++s) EXPECT_EQ((*follower)->n_past(s), (*leader)->n_past(s)) << s;

    // The same state: one more step gives the same logits.
    Batch e;
    e.add(9, 3, 0, true);
    e.add(11, 4, 2, true);
    sent.queue.clear();
    auto lead_logits = (*leader)->eval(e);
    auto follow_logits = (*follower)->eval(e);
    ASSERT_TRUE(lead_logits && follow_logits);
    ASSERT_EQ(lead_logits->size(), follow_logits->size());
    EXPECT_EQ(std::memcmp(lead_logits->data(), follow_logits->data(), lead_logits->size() * 4), 0);
}

TEST(StepMirror, BadMessagesAreErrors) {
    auto m = load_model(test::gguf_path("mixtral", "f32"));
    ASSERT_TRUE(m) << m.message();
    auto s = Session::create(**m, options(nullptr));
    ASSERT_TRUE(s);
    const std::vector<std::vector<uint8_t>> bad = {
        {},                           // empty
        {9},                          // unknown op
        {1, 5, 0, 0, 0},              // eval of 5 tokens, no token data
        {2, 7, 0, 0, 0},              // truncate without n_keep
        {2, 9, 0, 0, 0, 0, 0, 0, 0},  // truncate of sequence 9 of 3
    };
    for (const auto& msg : bad) {
        QueueChannel ch(/*leader=*/false);
        ch.queue.push_back(msg);
        auto r = follow_steps(ch, **s);
        EXPECT_FALSE(r) << "message of " << msg.size() << " bytes";
        if (!r) EXPECT_NE(r.message().find("step 0"), std::string::npos) << r.message();
    }
}

}  // namespace
}  // namespace moe
