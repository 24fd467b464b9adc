// ops::per_head_matmul on CPU: one parallel region over (head, row block) tasks. MLA's per-head
// matrices are small (tens of KiB each), so a region and a pool sync per head would cost more
// than the products at T = 1.
#include <algorithm>
#include <vector>

#include "kernels/cpu/matmul_tasks.h"
#include "kernels/ops.h"

namespace moe::ops {

void per_head_matmul(const float* x, int64_t T, int nh, int64_t x_tok, int64_t x_head,
                     const TensorView& w, float* y, ThreadPool& pool) {
    const int64_t N = w.shape[1], K = w.shape[2];
    std::vector<float> xh(size_t(int64_t(nh) * T * K));  // [nh, T, K]: each head's rows together
    for (int h = 0; h < nh; ++h)
        for (int64_t t = 0; t < T; ++t)
            std::copy_n(x + t * x_tok + int64_t(h) * x_head, K,
                        xh.data() + (int64_t(h) * T + t) * K);
    std::vector<PackedActs> xa(static_cast<size_t>(nh));
    for (int h = 0; h < nh; ++h)
        pack_acts(xh.data() + int64_t(h) * T * K, T, K, w.dtype, xa[size_t(h)], pool,
                  /*parallel=*/false);
    const int64_t rb = std::min<int64_t>(N, matmul_row_block(N * nh, T, pool.size()));
    const int64_t per_head = (N + rb - 1) / rb;
    pool.parallel_for(nh * per_head, [&](int64_t task) {
        const int h = int(task / per_head);
        const int64_t n0 = (task % per_head) * rb, n1 = std::min(N, n0 + rb);
        matmul_rows(xa[size_t(h)], nullptr, T, w.slice(h), n0, n1, y + int64_t(h) * N,
                    int64_t(nh) * N);
    });
}

}  // namespace moe::ops
