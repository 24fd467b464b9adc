// The fast matmul: activations packed once (ops::pack_acts), then (row block) tasks over the
// pool, each running the table's dot kernel for the active ISA (kernels/dispatch.h).
#include <algorithm>

#include "core/check.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/ref/vec_dot_ref.h"

namespace moe::ops {

using kern::ActFormat;

void pack_acts(const float* x, int64_t T, int64_t K, DType wtype, PackedActs& out,
               ThreadPool* pool) {
    const ActFormat f = kern::act_format(wtype);
    MOE_CHECK(K % kern::act_block_elems(f) == 0, "activation row of {} does not fit {} blocks", K,
              dtype_name(wtype));
    out.T = T;
    out.K = K;
    out.act = int(f);
    out.row_bytes = kern::act_row_bytes(f, K);
    if (f == ActFormat::F32) {
        out.storage.clear();
        out.base = reinterpret_cast<const uint8_t*>(x);
        return;
    }
    out.storage.resize(size_t(T * out.row_bytes));
    out.base = out.storage.data();
    const kern::QuantizeActFn q = kern::find_quantizer(f, kern::active_isa());
    uint8_t* dst = out.storage.data();
    const int64_t rb = out.row_bytes;
    if (pool && T >= 8 && pool->size() > 1) {
        pool->parallel_range(T, 4, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) q(x + t * K, dst + t * rb, K);
        });
    } else {
        for (int64_t t = 0; t < T; ++t) q(x + t * K, dst + t * rb, K);
    }
}

bool acts_fit(const PackedActs& a, DType wtype) { return a.act == int(kern::act_format(wtype)); }

int64_t matmul_row_block(int64_t N, int64_t T, int n_threads) {
    // About 4 tasks per thread for load balance, rounded to a multiple of 4 rows; at least 4
    // rows (16 for single tokens would be fine too) so the per-task overhead stays small.
    const int64_t want = std::max<int64_t>(1, int64_t(n_threads) * 4);
    int64_t rb = (N + want - 1) / want;
    rb = std::clamp<int64_t>((rb + 3) / 4 * 4, 4, 512);
    (void)T;
    return rb;
}

void matmul_rows(const PackedActs& x, const int64_t* rows, int64_t T, const TensorView& w,
                 int64_t n0, int64_t n1, float* y, int64_t ldy) {
    const int64_t K = w.shape.last();
    const kern::DotKernel* k = kern::find_kernel(w.dtype, kern::active_isa());
    MOE_CHECK(k != nullptr && int(k->act) == x.act && x.K == K,
              "matmul_rows: {} weight with K={} does not match packed acts (K={})",
              dtype_name(w.dtype), K, x.K);
    // Token tile: the packed rows of one tile stay in L2 while each weight row, loaded once per
    // tile, is reused from L1 for every group of kMaxNx tokens.
    const int64_t tile = std::clamp<int64_t>((256 << 10) / std::max<int64_t>(1, x.row_bytes), 4,
                                             256) / kern::kMaxNx * kern::kMaxNx;
    const void* xp[kern::kMaxNx];
    float out[kern::kMaxNx];
    for (int64_t t0 = 0; t0 < T; t0 += tile) {
        const int64_t t1 = std::min(T, t0 + tile);
        for (int64_t n = n0; n < n1; ++n) {
            const uint8_t* wr = w.row(n);
            for (int64_t t = t0; t < t1; t += kern::kMaxNx) {
                const int nx = int(std::min<int64_t>(kern::kMaxNx, t1 - t));
                for (int j = 0; j < nx; ++j) xp[j] = x.row(rows ? rows[t + j] : t + j);
                k->dot(K, wr, xp, nx, out);
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
    pack_acts(x, T, K, w.dtype, a, &pool);
    const int64_t rb = matmul_row_block(N, T, pool.size());
    const int64_t nblk = (N + rb - 1) / rb;
    pool.parallel_for(nblk, [&](int64_t b) {
        matmul_rows(a, nullptr, T, w, b * rb, std::min(N, (b + 1) * rb), y, N);
    });
}

}  // namespace moe::ops
