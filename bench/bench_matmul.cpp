// Kernel benchmark: ops::matmul on realistic MoE-expert shapes, per ISA (MOE_ISA-style override)
// plus the old dequantize-then-f32 reference. Plain timing (no Google Benchmark needed):
//   bench_matmul [threads=2] [types=q4_K,q8_0] [T list=1,128]   (MOE_BENCH_FAST=1: skip ref/scalar)
// Prints one row per (type, T, path): ms per call, GB/s of weights, GFLOP/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/ref/quantize.h"
#include "kernels/ref/vec_dot_ref.h"

using namespace moe;

namespace {

double time_ms(int reps, const std::function<void()>& f) {
    f();  // warm-up
    double best = 1e30;
    for (int r = 0; r < 3; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) f();
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        best = std::min(best, ms / reps);
    }
    return best;
}

std::vector<uint8_t> make_weights(DType t, int64_t N, int64_t K, std::mt19937& rng) {
    std::normal_distribution<float> g(0.0f, 0.05f);
    std::vector<float> f(size_t(N * K));
    for (auto& v : f) v = g(rng);
    std::vector<uint8_t> w(size_t(N * dtype_row_bytes(t, K)));
    if (t == DType::Q8_0) {
        ref::quantize_row_q8_0(f.data(), w.data(), N * K);
    } else {
        // Random levels with sane f16 scales: speed does not depend on the values.
        for (auto& b : w) b = uint8_t(rng());
        const auto& tr = traits(t);
        for (size_t o = 0; o < w.size(); o += size_t(tr.block_bytes)) {
            const uint16_t h = 0x1c00;  // f16 0.0039
            if (t == DType::Q4_K) std::memcpy(&w[o], &h, 2), std::memcpy(&w[o + 2], &h, 2);
            // E8M0 near 2^-8: random bytes give subnormal and infinite scales, which slow the
            // float side down on some CPUs.
            if (t == DType::MXFP4) w[o] = uint8_t(119 + (w[o] & 7));
        }
    }
    return w;
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
    auto made = ThreadPool::create(threads);
    if (!made) {
        std::fprintf(stderr, "error: %s\n", made.error().message.c_str());
        return 1;
    }
    ThreadPool& pool = **made;
    std::mt19937 rng(1);
    int64_t N = 2048, K = 1024;  // e.g. an expert's gate: n_ff x n_embd; MOE_BENCH_NK=NxK
    if (const char* nk = std::getenv("MOE_BENCH_NK")) {
        long n = 0, k = 0;
        if (std::sscanf(nk, "%ldx%ld", &n, &k) != 2 || n <= 0 || k <= 0) {
            std::fprintf(stderr, "error: MOE_BENCH_NK=%s is not NxK with N, K > 0\n", nk);
            return 1;
        }
        N = n, K = k;
    }
    std::vector<DType> types;
    std::vector<int64_t> Ts;
    {
        std::string list = argc > 2 ? argv[2] : "q4_K,q8_0", tl = argc > 3 ? argv[3] : "1,128";
        for (size_t a = 0; a <= list.size();) {
            const size_t e = std::min(list.find(',', a), list.size());
            auto t = dtype_from_name(list.substr(a, e - a));
            if (!t) {
                std::fprintf(stderr, "error: unknown type %s\n", list.substr(a, e - a).c_str());
                return 1;
            }
            // A row of K elements must be whole blocks of the weight and of its activations
            // (a partial block would be written past the end of the weights).
            const int64_t blk = std::max<int64_t>(traits(*t).block_elems,
                                                  kern::act_block_elems(kern::act_format(*t)));
            if (K % blk != 0) {
                std::fprintf(stderr, "error: K=%ld is not a multiple of %s's block of %ld\n",
                             long(K), std::string(dtype_name(*t)).c_str(), long(blk));
                return 1;
            }
            types.push_back(*t);
            a = e + 1;
        }
        for (size_t a = 0; a <= tl.size();) {
            const size_t e = std::min(tl.find(',', a), tl.size());
            Ts.push_back(std::atoll(tl.substr(a, e - a).c_str()));
            if (Ts.back() <= 0) {
                std::fprintf(stderr, "error: T list %s: each T must be > 0\n", tl.c_str());
                return 1;
            }
            a = e + 1;
        }
    }
    const bool fast = std::getenv("MOE_BENCH_FAST") != nullptr;
    // MOE_BENCH_MATS=M: M different matrices used in turn (e.g. experts streamed from DRAM).
    const int64_t mats =
        std::getenv("MOE_BENCH_MATS") ? std::atoll(std::getenv("MOE_BENCH_MATS")) : 1;
    if (mats <= 0) {
        std::fprintf(stderr, "error: MOE_BENCH_MATS must be > 0\n");
        return 1;
    }
    std::printf("# matmul y[T,%ld] = x[T,%ld] w^T, %d threads, cpu isa %s\n", long(N), long(K),
                threads, std::string(kern::isa_name(kern::active_isa())).c_str());
    std::printf("%-6s %5s %-10s %10s %9s %9s\n", "type", "T", "path", "ms", "GB/s", "GFLOP/s");
    for (DType t : types) {
        const auto w = make_weights(t, N * mats, K, rng);
        const TensorView wall{t, Shape{mats, N, K}, w.data()};
        int64_t call = 0;
        const double gb = double(w.size()) / 1e9 / double(mats);
        for (int64_t T : Ts) {
            std::normal_distribution<float> g(0.0f, 1.0f);
            std::vector<float> x(size_t(T * K)), y(size_t(T * N));
            for (auto& v : x) v = g(rng);
            const double flop = 2.0 * double(N) * double(K) * double(T);
            auto row = [&](const char* path, double ms) {
                std::printf("%-6s %5ld %-10s %10.3f %9.2f %9.1f\n",
                            std::string(dtype_name(t)).c_str(), long(T), path, ms, gb / ms * 1e3,
                            flop / ms / 1e6);
            };
            const int reps_ref = T == 1 ? 20 : 1;
            if (!fast)
                row("ref-dequant", time_ms(reps_ref, [&] {
                        ref::matmul_dequant(x.data(), T, wall.slice(0), y.data(), pool);
                    }));
            for (kern::Isa isa : {kern::Isa::Scalar, kern::Isa::Avx2, kern::Isa::Avx512}) {
                if (!kern::isa_supported(isa) || (fast && isa != kern::Isa::Avx512)) continue;
                kern::set_isa_override(isa);
                const int reps = T == 1 ? (isa == kern::Isa::Scalar ? 20 : 500)
                                        : (isa == kern::Isa::Scalar ? 1 : 10);
                row(std::string(kern::isa_name(isa)).c_str(), time_ms(reps, [&] {
                        ops::matmul(x.data(), T, wall.slice(call++ % mats), y.data(), pool);
                    }));
            }
            kern::clear_isa_override();
        }
    }
    return 0;
}
