// The CPU matmul's task interface (internal to kernels/ and its tests): activations packed once
// for a weight type, then single-threaded (rows, row block) tasks that ops::matmul,
// ops::per_head_matmul and ops::moe_experts split over the pool.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace moe::ops {

// Activations prepared for the kernels of one weight type, once, for several matrices (e.g. the
// MoE block input shared by every expert's gate and up matrices). For f32-activation types it
// points at x itself, which must then outlive it.
struct PackedActs {
    int64_t T = 0, K = 0, row_bytes = 0;
    int act = -1;  // kern::ActFormat
    // The pool's KernelOptions at pack time, resolved: matmul_rows runs with them.
    int isa = 0;  // kern::Isa
    bool deterministic = false;
    ThreadPool* pool = nullptr;  // the pool packed for: its per-thread scratch serves the GEMM
    const uint8_t* base = nullptr;
    std::vector<uint8_t> storage;
    const void* row(int64_t t) const { return base + t * row_bytes; }
};
// Packs x[T, K] for weights of type wtype under the pool's kernel options (quantizing rows over
// the pool when `parallel`).
void pack_acts(const float* x, int64_t T, int64_t K, DType wtype, PackedActs& out, ThreadPool& pool,
               bool parallel = true);
// True if acts packed for one type can feed weights of type wtype.
bool acts_fit(const PackedActs& a, DType wtype);
// Rows of packed acts (an expert's tokens) in the prompt GEMM's token groups, packed once and
// shared by every row block of every matrix whose type takes acts of that format (an expert's
// gate and up): packing per (matrix, row block) task was ~5% of a Qwen3-30B-A3B pp512.
struct GemmGroups {
    int act = -1;        // kern::ActFormat of the groups; -1: none
    int64_t n_gemm = 0;  // rows [0, n_gemm) are in the groups
    std::vector<uint8_t> bytes;
};
// How many of T rows matmul_rows gives the prompt GEMM for weights of type wtype (0: none).
int64_t gemm_tokens(const PackedActs& x, DType wtype, int64_t T);
// Packs rows[0, gemm_tokens(x, wtype, T)) of x (rows == nullptr: 0, 1, ...) as matmul_rows
// would for weights of type wtype.
void pack_gemm_groups(const PackedActs& x, const int64_t* rows, int64_t T, DType wtype,
                      GemmGroups& out);
// One task of a matmul: y[i * ldy + n] = dot(x row (rows ? rows[i] : i), w row n) for i < T and
// n in [n0, n1). Single-threaded; callers split (matrix, row block) tasks over a pool. With
// x.deterministic every row takes the same kernel path whatever T is (batch invariance).
// groups: the same rows packed by pack_gemm_groups (used when they fit w, else ignored).
void matmul_rows(const PackedActs& x, const int64_t* rows, int64_t T, const TensorView& w,
                 int64_t n0, int64_t n1, float* y, int64_t ldy, const GemmGroups* groups = nullptr);
// Rows per task that keeps every thread busy without making tasks tiny.
int64_t matmul_row_block(int64_t N, int64_t T, int n_threads);

}  // namespace moe::ops
