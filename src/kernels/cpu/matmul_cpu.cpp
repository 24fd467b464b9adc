// The fast matmul: activations packed once (ops::pack_acts), then (row block) tasks over the
// pool, each running the table's dot kernel for the active ISA (kernels/dispatch.h).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/matmul_tasks.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/ref/vec_dot_ref.h"

namespace moe::ops {

using kern::ActFormat;

void pack_acts(const float* x, int64_t T, int64_t K, DType wtype, PackedActs& out, ThreadPool& pool,
               bool parallel) {
    const ActFormat f = kern::act_format(wtype);
    MOE_CHECK(K % kern::act_block_elems(f) == 0, "activation row of {} does not fit {} blocks", K,
              dtype_name(wtype));
    out.T = T;
    out.K = K;
    out.act = int(f);
    out.row_bytes = kern::act_row_bytes(f, K);
    out.isa = int(kern::resolve_isa(pool.kernel_options().isa));
    out.deterministic = pool.kernel_options().deterministic;
    out.pool = &pool;
    if (f == ActFormat::F32) {
        out.storage.clear();
        out.base = reinterpret_cast<const uint8_t*>(x);
        return;
    }
    out.storage.resize(size_t(T * out.row_bytes));
    out.base = out.storage.data();
    const kern::QuantizeActFn q = kern::find_quantizer(f, kern::Isa(out.isa));
    uint8_t* dst = out.storage.data();
    const int64_t rb = out.row_bytes;
    if (parallel && T >= 8 && pool.size() > 1) {
        pool.parallel_range(T, 4, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) q(x + t * K, dst + t * rb, K);
        });
    } else {
        for (int64_t t = 0; t < T; ++t) q(x + t * K, dst + t * rb, K);
    }
}

bool acts_fit(const PackedActs& a, DType wtype) {
    return a.act == int(kern::act_format(wtype));
}

int64_t matmul_row_block(int64_t N, int64_t T, int n_threads) {
    // About 4 tasks per thread for load balance, rounded to a multiple of 4 rows; at least 4
    // rows so the per-task overhead stays small. A single token streams its rows once, and a
    // region ends when its last task does: with 4 tasks per thread the other threads waited
    // half a task at every one of a step's ~8 regions per layer (the pool's spin, ~10% of
    // decode samples on 2 threads), so decode takes 16 per thread (a task still streams tens
    // of KiB against a fraction of a microsecond of task overhead).
    const int64_t per_thread = T == 1 ? 16 : 4;
    const int64_t want = std::max<int64_t>(1, int64_t(n_threads) * per_thread);
    int64_t rb = (N + want - 1) / want;
    rb = std::clamp<int64_t>((rb + 3) / 4 * 4, 4, 512);
    return rb;
}

namespace {

constexpr int kG = kern::kGemmTokens;

// The GEMM takes every full group of kG tokens, and a partial last group when it has at least
// kMinPartial tokens (padding lanes cost less than the dot kernels' weight decoding; up to
// kG / 2 tokens it is a pair group, without padding lanes up to 8 tokens); a smaller tail goes
// through the dot kernels. Deterministic: every row through the dot kernels, whose per-row sums
// do not depend on nx (nor on the single-token _rows loop, the same kernel at nx = 1), so a
// row's result does not depend on T. Decode keeps its speed; prompts lose the GEMM (measured in
// docs/DEVELOPERS.md). The GEMM for every row, padded to 16 lanes also at T = 1, was measured
// too: decode 2.5x slower.
int64_t gemm_count(const PackedActs& x, int64_t T) {
    constexpr int64_t kMinPartial = 4;
    const int64_t tail = T % kG;
    return x.deterministic ? 0 : tail >= kMinPartial ? T : T - tail;
}

int64_t groups_bytes(const kern::GemmKernel& g, int64_t K, int64_t n) {
    const int64_t rem = n % kG;
    return n / kG * g.group_bytes(K) + (rem == 0        ? 0
                                        : rem <= kG / 2 ? g.pair_bytes(K)
                                                        : g.group_bytes(K));
}

// Rows [0, n) into groups of kG (a last one of at most kG / 2 rows as a pair group), padded
// with zero_row.
void pack_groups(const kern::GemmKernel& g, const PackedActs& x, const int64_t* rows, int64_t n,
                 const uint8_t* zero_row, uint8_t* dst) {
    const int64_t gb = g.group_bytes(x.K), n_full = n / kG, rem = n % kG;
    const void* rp[kG];
    for (int64_t gi = 0; gi < n_full + (rem > 0); ++gi) {
        for (int j = 0; j < kG; ++j) {
            const int64_t t = gi * kG + j;
            rp[j] = t < n ? x.row(rows ? rows[t] : t) : zero_row;
        }
        (rem > 0 && rem <= kG / 2 && gi == n_full ? g.pack_pairs : g.pack)(rp, x.K, dst + gi * gb);
    }
}

}  // namespace

int64_t gemm_tokens(const PackedActs& x, DType wtype, int64_t T) {
    const kern::GemmKernel* g = kern::find_gemm(wtype, kern::Isa(x.isa));
    return g && int(g->act) == x.act ? gemm_count(x, T) : 0;
}

void pack_gemm_groups(const PackedActs& x, const int64_t* rows, int64_t T, DType wtype,
                      GemmGroups& out) {
    out.act = -1;
    out.n_gemm = gemm_tokens(x, wtype, T);
    if (out.n_gemm == 0) return;
    const kern::GemmKernel* g = kern::find_gemm(wtype, kern::Isa(x.isa));
    out.bytes.resize(size_t(groups_bytes(*g, x.K, out.n_gemm)));
    const std::vector<uint8_t> zero(size_t(x.row_bytes), 0);
    pack_groups(*g, x, rows, out.n_gemm, zero.data(), out.bytes.data());
    out.act = x.act;
}

void matmul_rows(const PackedActs& x, const int64_t* rows, int64_t T, const TensorView& w,
                 int64_t n0, int64_t n1, float* y, int64_t ldy, const GemmGroups* groups) {
    const int64_t K = w.shape.last();
    const kern::Isa isa = kern::Isa(x.isa);
    const kern::DotKernel* k = kern::find_kernel(w.dtype, isa);
    MOE_CHECK(k != nullptr && int(k->act) == x.act && x.K == K,
              "matmul_rows: {} weight with K={} does not match packed acts (K={})",
              dtype_name(w.dtype), K, x.K);
    // Loop order for prompts: a group of kMaxNx activation rows (a few KiB: stays in L1) runs
    // over a chunk of weight rows (tens of KiB: stays in L2) before the next group. Each weight
    // row is decoded once per group inside the kernel; the activations are not re-read from L2
    // for every weight row (measured ~1.3x over token tiles of ~100 rows on Q4_K / Q8_0).
    const int64_t wrb = w.row_bytes();
    const auto* wbase = static_cast<const uint8_t*>(w.data);
    const int64_t chunk = std::clamp<int64_t>((48 << 10) / std::max<int64_t>(1, wrb), 4, 256);
    const void* xp[kern::kMaxNx];
    float out[kern::kMaxNx];
    int64_t t_first = 0;  // tokens [0, t_first) went through the GEMM
    const int64_t n_gemm = gemm_count(x, T);
    if (const kern::GemmKernel* g = n_gemm > 0 ? kern::find_gemm(w.dtype, isa) : nullptr) {
        const bool shared = groups && groups->act == x.act && groups->n_gemm == n_gemm;
        // This thread's scratch in the pool: [a zero activation row (padding) | the GEMM's
        // unpacked weight rows | the groups, unless shared].
        MOE_CHECK(x.pool != nullptr, "matmul_rows: activations not packed by pack_acts");
        std::vector<uint8_t>& scratch = x.pool->scratch();
        const int64_t zero_bytes = (x.row_bytes + 63) / 64 * 64;
        const int64_t unpack_bytes = (kern::gemm_unpack_bytes(K) + 63) / 64 * 64;
        scratch.resize(
            size_t(zero_bytes + unpack_bytes + (shared ? 0 : groups_bytes(*g, K, n_gemm))));
        uint8_t* unpack = scratch.data() + zero_bytes;
        const uint8_t* xg = shared ? groups->bytes.data() : unpack + unpack_bytes;
        if (!shared) {
            std::fill_n(scratch.data(), x.row_bytes, uint8_t(0));
            pack_groups(*g, x, rows, n_gemm, scratch.data(), unpack + unpack_bytes);
        }
        g->run(K, wbase + n0 * wrb, wrb, n1 - n0, xg, n_gemm, y + n0, ldy, unpack);
        t_first = n_gemm;
    }
    // The single-token row loop (a last group of one token) stages its activation row in this
    // thread's scratch in the pool, 64-byte aligned (the GEMM above is done with it).
    void* stage = nullptr;
    if (k->rows && (T - t_first) % kern::kMaxNx == 1) {
        MOE_CHECK(x.pool != nullptr, "matmul_rows: activations not packed by pack_acts");
        std::vector<uint8_t>& scratch = x.pool->scratch();
        const size_t need = size_t(kern::rows_stage_bytes(K)) + 64;
        if (scratch.size() < need) scratch.resize(need);
        const uintptr_t p = reinterpret_cast<uintptr_t>(scratch.data());
        stage = scratch.data() + (64 - p % 64) % 64;
    }
    for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
        const int64_t c1 = std::min(n1, c0 + chunk);
        for (int64_t t = t_first; t < T; t += kern::kMaxNx) {
            const int nx = int(std::min<int64_t>(kern::kMaxNx, T - t));
            for (int j = 0; j < nx; ++j) xp[j] = x.row(rows ? rows[t + j] : t + j);
            if (nx == 1 && k->rows) {
                k->rows(K, wbase + c0 * wrb, wrb, c1 - c0, xp[0], y + t * ldy + c0, stage);
                continue;
            }
            for (int64_t n = c0; n < c1; ++n) {
                k->dot(K, wbase + n * wrb, xp, nx, out);
                for (int j = 0; j < nx; ++j) y[(t + j) * ldy + n] = out[j];
            }
        }
    }
}

void matmul(const float* x, int64_t T, const TensorView& w, float* y, ThreadPool& pool) {
    MOE_CHECK(w.shape.rank == 2, "matmul weight must be 2-D, got {}", w.shape.str());
    const int64_t N = w.shape[0], K = w.shape[1];
    if (T <= 0 || N <= 0) return;
    if (!kern::find_kernel(w.dtype, kern::Isa::Scalar)) {  // no dot kernel: dequantize
        ref::matmul_dequant(x, T, w, y, pool);
        return;
    }
    PackedActs a;
    pack_acts(x, T, K, w.dtype, a, pool);
    const int64_t rb = matmul_row_block(N, T, pool.size());
    const int64_t nblk = (N + rb - 1) / rb;
    pool.parallel_for(nblk, [&](int64_t b) {
        matmul_rows(a, nullptr, T, w, b * rb, std::min(N, (b + 1) * rb), y, N);
    });
}

void matmul_group(const float* x, int64_t T, std::span<const MatmulOut> outs, ThreadPool& pool) {
    if (T <= 0 || outs.empty()) return;
    // x packed once per activation format; a type without dot kernels goes alone (dequantized).
    PackedActs packs[3];  // by kern::ActFormat
    struct Task {
        const MatmulOut* o;
        const PackedActs* a;
        int64_t n0, n1;
    };
    std::vector<const MatmulOut*> fused;
    int64_t rows = 0;
    for (const MatmulOut& o : outs) {
        MOE_CHECK(o.w.shape.rank == 2, "matmul weight must be 2-D, got {}", o.w.shape.str());
        if (!kern::find_kernel(o.w.dtype, kern::Isa::Scalar)) {
            matmul(x, T, o.w, o.y, pool);
            continue;
        }
        PackedActs& a = packs[size_t(kern::act_format(o.w.dtype))];
        if (a.act < 0) pack_acts(x, T, o.w.shape[1], o.w.dtype, a, pool);
        MOE_CHECK(a.K == o.w.shape[1], "matmul_group: K {} and {} in one group", a.K, o.w.shape[1]);
        fused.push_back(&o);
        rows += o.w.shape[0];
    }
    if (rows == 0) return;
    const int64_t rb = matmul_row_block(rows, T, pool.size());
    std::vector<Task> tasks;
    for (const MatmulOut* o : fused) {
        const int64_t N = o->w.shape[0];
        const PackedActs* a = &packs[size_t(kern::act_format(o->w.dtype))];
        for (int64_t n0 = 0; n0 < N; n0 += rb) tasks.push_back({o, a, n0, std::min(N, n0 + rb)});
    }
    pool.parallel_for(int64_t(tasks.size()), [&](int64_t i) {
        const Task& t = tasks[size_t(i)];
        matmul_rows(*t.a, nullptr, T, t.o->w, t.n0, t.n1, t.o->y, t.o->w.shape[0]);
    });
}

}  // namespace moe::ops
