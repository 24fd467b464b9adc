// The step messages of runtime/step_mirror.h: one op byte, then its fields as int32 values
// (eval: T, then token[T], pos[T], seq[T], logits[T] as 0/1; truncate: seq, n_keep).
#include "runtime/step_mirror.h"

#include <cstring>

#include "runtime/session.h"

namespace moe {
namespace {

enum class StepOp : uint8_t { Eval = 1, Truncate = 2, Shutdown = 3 };

void put(std::vector<uint8_t>& m, int32_t v) {
    const size_t at = m.size();
    m.resize(at + sizeof(v));
    std::memcpy(m.data() + at, &v, sizeof(v));
}

// Reads the message's int32 fields in order; every read is checked against its length.
struct Reader {
    const std::vector<uint8_t>& m;
    size_t at = 1;
    Result<int32_t> next() {
        if (m.size() - at < sizeof(int32_t))
            return make_error("step message of {} bytes ends early", m.size());
        int32_t v;
        std::memcpy(&v, m.data() + at, sizeof(v));
        at += sizeof(v);
        return v;
    }
};

Result<Batch> read_batch(Reader& r) {
    MOE_TRY(const int32_t T, r.next());
    if (T < 0 || size_t(T) > (r.m.size() - r.at) / (4 * sizeof(int32_t)))
        return make_error("step message: batch of {} tokens in {} bytes", T, r.m.size());
    Batch b;
    b.token.resize(size_t(T)), b.pos.resize(size_t(T)), b.seq.resize(size_t(T));
    b.logits.resize(size_t(T));
    for (auto* v : {&b.token, &b.pos, &b.seq})
        for (auto& x : *v) {
            MOE_TRY(x, r.next());
        }
    for (auto& x : b.logits) {
        MOE_TRY(const int32_t l, r.next());
        x = l != 0;
    }
    return b;
}

}  // namespace

Result<void> send_eval(StepChannel& ch, const Batch& b) {
    std::vector<uint8_t> m{uint8_t(StepOp::Eval)};
    m.reserve(1 + sizeof(int32_t) * (1 + 4 * size_t(b.size())));
    put(m, int32_t(b.size()));
    for (const auto* v : {&b.token, &b.pos, &b.seq})
        for (int32_t x : *v) put(m, x);
    for (uint8_t l : b.logits) put(m, l);
    return ch.exchange(m);
}

Result<void> send_truncate(StepChannel& ch, int seq, int n_keep) {
    std::vector<uint8_t> m{uint8_t(StepOp::Truncate)};
    put(m, seq);
    put(m, n_keep);
    return ch.exchange(m);
}

Result<void> send_shutdown(StepChannel& ch) {
    std::vector<uint8_t> m{uint8_t(StepOp::Shutdown)};
    return ch.exchange(m);
}

namespace {

// Executes one message on s; true for the shutdown message.
Result<bool> execute(const std::vector<uint8_t>& m, Session& s) {
    if (m.empty()) return make_error("empty message from the leader");
    Reader r{m};
    switch (StepOp(m[0])) {
        case StepOp::Eval: {
            MOE_TRY(const Batch b, read_batch(r));
            MOE_TRY_VOID(s.eval(b));
            return false;
        }
        case StepOp::Truncate: {
            MOE_TRY(const int32_t seq, r.next());
            MOE_TRY(const int32_t n_keep, r.next());
            if (seq < 0 || seq >= s.n_seqs())
                return make_error("truncate of sequence {} of {}", seq, s.n_seqs());
            s.truncate(seq, n_keep);
            return false;
        }
        case StepOp::Shutdown:
            return true;
    }
    return make_error("unknown step op {}", int(m[0]));
}

}  // namespace

Result<void> follow_steps(StepChannel& ch, Session& s) {
    std::vector<uint8_t> m;
    for (int64_t step = 0;; ++step) {
        MOE_TRY_VOID(ch.exchange(m));
        auto done = execute(m, s);
        if (!done) return make_error("step {}: {}", step, done.message());
        if (*done) return {};
    }
}

}  // namespace moe
