// Scalar references of the coarse ops in ops.h (same contracts, single-threaded, written as the
// equations read, sums in double): what tests compare the CPU splits in kernels/cpu/ with, and
// what a later backend is checked against.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/ops.h"

namespace moe::ref {

void attention(const ops::AttentionParams& p, const float* q, int64_t T, const int32_t* pos,
               const int32_t* seq, const ops::KvPages& kv, float* out);

void per_head_matmul(const float* x, int64_t T, int nh, int64_t x_tok, int64_t x_head,
                     const TensorView& w, float* y);

void moe_experts(const float* x, int64_t T, int k, const int32_t* ids, const float* weights,
                 std::span<const ops::ExpertWeights> experts, const ops::GluParams& act, float* y);

}  // namespace moe::ref
