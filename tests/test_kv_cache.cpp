// The paged KV cache: sequences whose pages interleave in a shared pool compute exactly what each
// computes alone, truncation gives pages back for reuse, a full pool is a clean error, and the
// pool's size follows the one KV-bytes function.
#include <gtest/gtest.h>

#include <cstring>

#include "analysis/params.h"
#include "fixtures.h"
#include "models/kv_cache.h"
#include "models/model.h"
#include "runtime/session.h"

namespace moe {
namespace {

// A deterministic token stream per job (ids below the fixtures' vocab of 512).
std::vector<int32_t> job_tokens(int job, int n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) t[size_t(i)] = int32_t((job * 97 + i * 31 + 7) % 500 + 1);
    return t;
}

// Logits of each token fed one eval at a time (prompt of `prompt` tokens first), so a shared run
// and a lone run take the same kernel calls and only the cache layout differs.
struct Job {
    std::vector<int32_t> tokens;
    int prompt = 0;
};

std::vector<float> run_alone(const Model& m, const Job& j) {
    SessionOptions so;
    so.n_threads = 2, so.n_ctx = 64;
    Session s(m, so);
    std::vector<float> out;
    auto r = s.eval_tokens(std::span(j.tokens).first(size_t(j.prompt)), false);
    EXPECT_TRUE(r.ok()) << r.message();
    out = *r;
    for (size_t i = size_t(j.prompt); i < j.tokens.size(); ++i) {
        auto d = s.eval_tokens(std::span(j.tokens).subspan(i, 1), false);
        EXPECT_TRUE(d.ok()) << d.message();
        out.insert(out.end(), d->begin(), d->end());
    }
    return out;
}

class PagedKv : public testing::TestWithParam<std::string> {};

// Eight jobs of different lengths over three slots and a pool of 5 pages (too small for three
// sequences at n_ctx): slots advance in a scrambled order, a finished job frees its pages and
// the next job takes them, so pages of different sequences interleave and get reused.
TEST_P(PagedKv, InterleavedSequencesMatchEachRunAlone) {
    auto m = load_model(test::gguf_path(GetParam(), "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    std::vector<Job> jobs;
    for (int i = 0; i < 8; ++i) jobs.push_back({job_tokens(i, 9 + (i * 13) % 29), 1 + i % 5});

    SessionOptions so;
    so.n_threads = 2, so.n_ctx = 64, so.n_seq = 3, so.kv_tokens = 5 * 16;
    Session s(**m, so);
    std::vector<std::vector<float>> got(jobs.size());
    std::vector<int> job_of(3, -1);
    std::vector<size_t> next(jobs.size(), 0);
    size_t started = 0, done = 0;
    int64_t peak_pages = 0;
    for (int round = 0; done < jobs.size(); ++round) {
        ASSERT_LT(round, 1000);
        for (int k = 0; k < 3; ++k) {
            const int slot = (round * 2 + k * (round % 3 + 1)) % 3;  // scrambled order
            int& j = job_of[size_t(slot)];
            if (j < 0 && started < jobs.size()) {
                // Admit a job when the pages it will take fit beside what running jobs will take.
                int64_t promised = 0;
                for (int o = 0; o < 3; ++o)
                    if (job_of[size_t(o)] >= 0)
                        promised += s.kv_pages_needed(
                            o, int64_t(jobs[size_t(job_of[size_t(o)])].tokens.size()));
                const int64_t len = int64_t(jobs[started].tokens.size());
                if (s.kv_pages_needed(slot, len) + promised <=
                    s.kv_pages_total() - s.kv_pages_used())
                    j = int(started++);
            }
            if (j < 0) continue;
            const Job& job = jobs[size_t(j)];
            const size_t i = next[size_t(j)];
            const size_t n = i == 0 ? size_t(job.prompt) : 1;
            auto r = s.eval_tokens(std::span(job.tokens).subspan(i, n), false, slot);
            ASSERT_TRUE(r.ok()) << r.message();
            got[size_t(j)].insert(got[size_t(j)].end(), r->begin(), r->end());
            next[size_t(j)] = i + n;
            peak_pages = std::max(peak_pages, s.kv_pages_used());
            if (next[size_t(j)] == job.tokens.size()) s.truncate(slot, 0), j = -1, ++done;
        }
    }
    EXPECT_EQ(s.kv_pages_used(), 0);
    EXPECT_GE(peak_pages, 4);  // more than one job's 3 pages: sequences shared the pool
    for (size_t j = 0; j < jobs.size(); ++j) {
        const auto want = run_alone(**m, jobs[j]);
        ASSERT_EQ(got[j].size(), want.size()) << "job " << j;
        EXPECT_EQ(std::memcmp(got[j].data(), want.data(), want.size() * sizeof(float)), 0)
            << GetParam() << " job " << j;
    }
}

// Keeping a prefix and evaluating a different continuation equals a fresh run of the prefix and
// that continuation.
TEST_P(PagedKv, TruncateAndReevalEqualsFreshRun) {
    auto m = load_model(test::gguf_path(GetParam(), "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    const auto prefix = job_tokens(1, 10), old_tail = job_tokens(2, 30),
               new_tail = job_tokens(3, 25);
    SessionOptions so;
    so.n_threads = 2, so.n_ctx = 64;
    Session fresh(**m, so), reused(**m, so);
    ASSERT_TRUE(fresh.eval_tokens(prefix, false).ok());
    auto want = fresh.eval_tokens(new_tail, true);
    ASSERT_TRUE(want.ok()) << want.message();

    ASSERT_TRUE(reused.eval_tokens(prefix, false).ok());
    ASSERT_TRUE(reused.eval_tokens(old_tail, false).ok());
    EXPECT_EQ(reused.kv_pages_used(), 3);  // 40 positions
    reused.truncate(0, int(prefix.size()));
    EXPECT_EQ(reused.kv_pages_used(), 1);
    EXPECT_EQ(reused.n_past(), int(prefix.size()));
    auto got = reused.eval_tokens(new_tail, true);
    ASSERT_TRUE(got.ok()) << got.message();
    ASSERT_EQ(got->size(), want->size());
    EXPECT_EQ(std::memcmp(got->data(), want->data(), want->size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(Families, PagedKv, testing::Values("mixtral", "deepseek3", "gptoss"));

// A full pool refuses the batch before anything is written and takes it once pages come back.
TEST(PagedKvPool, ExhaustionIsACleanErrorAndFreedPagesServeTheNextRequest) {
    auto m = load_model(test::gguf_path("qwen3moe", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    SessionOptions so;
    so.n_threads = 2, so.n_ctx = 64, so.n_seq = 2, so.kv_tokens = 40;  // 3 pages
    Session s(**m, so);
    EXPECT_EQ(s.kv_pages_total(), 3);
    ASSERT_TRUE(s.eval_tokens(job_tokens(0, 33), false, 0).ok());  // 3 pages
    EXPECT_FALSE(s.kv_can_grow(1, 1));
    EXPECT_EQ(s.kv_pages_needed(1, 17), 2);
    auto r = s.eval_tokens(job_tokens(1, 4), false, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("KV pool is full"), std::string::npos) << r.message();
    EXPECT_EQ(s.n_past(1), 0);
    EXPECT_EQ(s.kv_pages_used(), 3);
    // A batch mixing both sequences is refused as a whole, too.
    Batch b;
    b.add(5, 33, 0, true);
    b.add(6, 0, 1, true);
    EXPECT_FALSE(s.eval(b).ok());
    EXPECT_EQ(s.n_past(0), 33);

    s.truncate(0, 16);
    EXPECT_EQ(s.kv_pages_used(), 1);
    // A batch refused by the model (token id beyond the vocabulary) keeps no pages either.
    Batch bad;
    bad.add(100000, 0, 1, true);
    EXPECT_FALSE(s.eval(bad).ok());
    EXPECT_EQ(s.kv_pages_used(), 1);
    EXPECT_TRUE(s.kv_can_grow(1, 32));
    EXPECT_TRUE(s.eval_tokens(job_tokens(1, 20), false, 1).ok());
    EXPECT_EQ(s.kv_pages_used(), 3);
}

// Pages given back are the next ones taken (LIFO), so touched memory stays at the peak in use.
TEST(PagedKvPool, FreedPagesAreReusedFirst) {
    auto m = load_model(test::gguf_path("llama", "f32"));
    ASSERT_TRUE(m.ok()) << m.message();
    KvCache kv((*m)->config, 64, 2);
    EXPECT_EQ(kv.pages_total(), 8);
    ASSERT_TRUE(kv.grow(0, 48).ok());
    const uint8_t* first = kv.k(0, 0, 0);
    const uint8_t* last = kv.k(0, 0, 32);
    kv.shrink(0, 20);  // keeps 2 pages
    EXPECT_EQ(kv.pages_used(), 2);
    ASSERT_TRUE(kv.grow(1, 1).ok());
    EXPECT_EQ(kv.k(0, 1, 0), last);
    EXPECT_EQ(kv.k(0, 0, 0), first);
    EXPECT_EQ(kv.k(0, 0, 5) - kv.k(0, 0, 0),
              5 * kv.k_row_bytes(0));   // rows of a page are contiguous
    EXPECT_FALSE(kv.grow(1, 65).ok());  // beyond n_ctx
    EXPECT_FALSE(kv.grow(0, 64 + 1).ok());
    ASSERT_TRUE(kv.grow(1, 64).ok());  // 4 pages: 6 of 8 in use
    EXPECT_EQ(kv.pages_used(), 6);
    auto full = kv.grow(0, 64);  // the last 2 free pages
    ASSERT_TRUE(full.ok());
    EXPECT_EQ(kv.pages_needed(0, 64), 0);
    EXPECT_FALSE(kv.holds(0, 64));
    EXPECT_TRUE(kv.holds(0, 63));
}

// The cache maps exactly what the one KV-bytes function says (inspect's estimate uses it too),
// for standard attention, GQA with per-layer shapes and MLA.
TEST(KvBytes, CacheAllocatesWhatTheEstimateSays) {
    for (const char* name : {"llama", "gptoss", "deepseek2", "deepseek3"}) {
        auto m = load_model(test::gguf_path(name, "f32"));
        ASSERT_TRUE(m.ok()) << m.message();
        const ModelConfig& c = (*m)->config;
        KvCache kv(c, 48, 3, 100);  // 100 tokens: 7 pages of 16
        EXPECT_EQ(kv.pages_total(), 7) << name;
        EXPECT_EQ(kv.bytes(), kv_bytes_per_token(c, {}) * 7 * 16) << name;
        EXPECT_EQ(int64_t(kv.bytes()), KvCache::pool_bytes(c, 100, {})) << name;
        int64_t per = 0;
        for (int il = 0; il < c.n_layer; ++il)
            per += (int64_t(kv.k_width(il)) + kv.v_width(il)) * int64_t(sizeof(float));
        EXPECT_EQ(uint64_t(per), kv_bytes_per_token(c, {})) << name;
        // The independent count from the fixture's hyperparameters.
        const int64_t want =
            c.use_mla ? int64_t(c.n_layer) * (c.mla.kv_lora_rank + c.mla.qk_rope) * 4
                      : int64_t(c.n_layer) * 2 * c.attn[0].n_head_kv * c.attn[0].head_dim * 4;
        EXPECT_EQ(int64_t(kv_bytes_per_token(c, {})), want) << name;
    }
}

}  // namespace
}  // namespace moe
