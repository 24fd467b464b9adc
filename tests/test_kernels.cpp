// Every registered dot kernel (each ISA this machine has) against the scalar reference, for every
// weight type, and the fast matmul against the dequantize-then-f32 reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/matmul_tasks.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/ref/quant_common.h"
#include "kernels/ref/quantize.h"
#include "kernels/ref/vec_dot_ref.h"

namespace moe {
namespace {

using kern::ActFormat;
using kern::Isa;

const DType kTypes[] = {DType::F32,  DType::F16,    DType::BF16,   DType::Q8_0,
                        DType::Q4_0, DType::Q4_1,   DType::Q5_0,   DType::Q5_1,
                        DType::Q2_K, DType::Q3_K,   DType::Q4_K,   DType::Q5_K,
                        DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS, DType::MXFP4};

// Random weight rows: random bytes (every bit pattern of the level fields is valid) with the
// scale fields overwritten by small positive/negative f16 values (E8M0 near 2^0 for MXFP4).
std::vector<uint8_t> random_weights(DType t, int64_t N, int64_t K, std::mt19937& rng) {
    const int64_t rb = dtype_row_bytes(t, K);
    std::vector<uint8_t> w(size_t(N * rb));
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::uniform_real_distribution<float> u(0.002f, 0.02f);
    auto f16 = [&](uint8_t* p, float v) { ref::detail::store_f16(p, v); };
    if (t == DType::F32 || t == DType::F16 || t == DType::BF16) {
        for (int64_t i = 0; i < N * K; ++i) {
            const float v = g(rng) * 0.1f;
            if (t == DType::F32) std::memcpy(w.data() + 4 * i, &v, 4);
            if (t == DType::F16) ref::detail::store_u16(w.data() + 2 * i, f32_to_fp16(v));
            if (t == DType::BF16) ref::detail::store_u16(w.data() + 2 * i, f32_to_bf16(v));
        }
        return w;
    }
    for (auto& b : w) b = uint8_t(rng());
    const auto& tr = traits(t);
    for (int64_t off = 0; off < int64_t(w.size()); off += tr.block_bytes) {
        uint8_t* b = w.data() + off;
        const float s = (rng() & 1) ? u(rng) : -u(rng);
        switch (t) {
            case DType::Q8_0:
            case DType::Q4_0:
            case DType::Q5_0:
            case DType::IQ4_NL:
            case DType::IQ4_XS:
                f16(b, s);
                break;
            case DType::Q4_1:
            case DType::Q5_1:  // min near -d * mid-level: centred weights
                f16(b, std::fabs(s));
                f16(b + 2, -std::fabs(s) * (t == DType::Q4_1 ? 7.5f : 15.5f) *
                               (0.8f + 0.4f * float(rng() % 1000) / 1000.0f));
                break;
            case DType::Q4_K:
            case DType::Q5_K:
                f16(b, std::fabs(s)), f16(b + 2, std::fabs(u(rng)));
                break;
            case DType::Q2_K:
                f16(b + 80, std::fabs(s)), f16(b + 82, std::fabs(u(rng)));
                break;
            case DType::Q3_K:
                f16(b + 108, s);
                break;
            case DType::Q6_K:
                f16(b + 208, s);
                break;
            case DType::MXFP4:
                b[0] = uint8_t(120 + rng() % 8);
                break;
            default:
                break;
        }
    }
    return w;
}

std::vector<float> random_acts(int64_t T, int64_t K, std::mt19937& rng) {
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> x(size_t(T * K));
    for (auto& v : x) v = g(rng);
    return x;
}

// Σ(got-want)^2 / Σ want^2, and a description of the first mismatches for failure messages.
double nmse(const std::vector<float>& got, const std::vector<float>& want, int64_t N,
            std::string* first) {
    double e = 0, r = 0;
    std::ostringstream os;
    int shown = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double d = double(got[i]) - want[i];
        e += d * d;
        r += double(want[i]) * want[i];
        if (shown < 5 && std::fabs(d) > 1e-3 * (std::fabs(want[i]) + 1e-3)) {
            os << " [t=" << i / size_t(N) << " n=" << i % size_t(N) << " got=" << got[i]
               << " want=" << want[i] << "]";
            ++shown;
        }
    }
    if (first) *first = os.str();
    return r > 0 ? e / r : e;
}

std::vector<Isa> isas_here() {
    std::vector<Isa> v;
    for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
        if (kern::isa_supported(i)) v.push_back(i);
    return v;
}

struct IsaGuard {
    explicit IsaGuard(Isa i) { kern::set_isa_override(i); }
    ~IsaGuard() { kern::clear_isa_override(); }
};

TEST(Dispatch, ReportsFeaturesAndHasScalarForEveryType) {
    const auto& f = kern::cpu_features();
    std::printf(
        "cpu: avx2=%d fma=%d f16c=%d avx512f=%d bw=%d vl=%d dq=%d vnni=%d bf16=%d; "
        "active isa: %s\n",
        f.avx2, f.fma, f.f16c, f.avx512f, f.avx512bw, f.avx512vl, f.avx512dq, f.avx512vnni,
        f.avx512bf16, std::string(kern::isa_name(kern::active_isa())).c_str());
    for (DType t : kTypes) {
        EXPECT_NE(kern::exact_kernel(t, Isa::Scalar), nullptr) << dtype_name(t);
        EXPECT_TRUE(ops::weight_type_supported(t));
    }
    EXPECT_EQ(kern::find_kernel(DType::Q4_K, Isa::Avx512)->act, ActFormat::Q8K);
}

// The SIMD activation quantizers equal the scalar ones byte for byte.
TEST(Kernels, ActivationQuantizersMatchReferenceExactly) {
    std::mt19937 rng(7);
    const int64_t K = 1024;
    auto x = random_acts(3, K, rng);
    for (int i = 0; i < 40; ++i) x[size_t(rng() % x.size())] *= 9.0f;  // outliers, ties of |x|
    x[5] = -x[17];
    for (int i = 256; i < 512; ++i) x[size_t(i)] = 0.0f;  // an all-zero block
    for (ActFormat f : {ActFormat::Q8x32, ActFormat::Q8K}) {
        const int64_t rb = kern::act_row_bytes(f, K);
        std::vector<uint8_t> want(size_t(3 * rb));
        for (int t = 0; t < 3; ++t)
            kern::find_quantizer(f, Isa::Scalar)(x.data() + t * K, want.data() + t * rb, K);
        for (Isa isa : isas_here()) {
            std::vector<uint8_t> got(want.size());
            for (int t = 0; t < 3; ++t)
                kern::find_quantizer(f, isa)(x.data() + t * K, got.data() + t * rb, K);
            EXPECT_EQ(got, want) << "format " << int(f) << " isa " << kern::isa_name(isa);
        }
    }
}

class KernelsByType : public testing::TestWithParam<DType> {};

// Each ISA's kernel on the same packed activations as the scalar reference: only the order of
// f32 additions differs, so the results agree to f32 rounding (nmse < 1e-10).
TEST_P(KernelsByType, EveryIsaMatchesScalarVecDot) {
    const DType t = GetParam();
    std::mt19937 rng(uint32_t(t) + 1);
    const int64_t N = 37;
    // 224, 288, 320 = 7, 9, 10 blocks of 32: the 32-element formats' 4-block steps with tails
    // of 3 (a pair and an odd block), 1 and 2 blocks.
    for (int64_t K : {256, 768, 224, 288, 320}) {
        if (K % traits(t).block_elems != 0) continue;
        const auto w = random_weights(t, N, K, rng);
        const auto* ref = kern::exact_kernel(t, Isa::Scalar);
        ASSERT_NE(ref, nullptr);
        const int64_t T = 11;
        const auto x = random_acts(T, K, rng);
        const int64_t xrb = kern::act_row_bytes(ref->act, K);
        std::vector<uint8_t> xq(size_t(T * xrb));
        for (int64_t i = 0; i < T; ++i) {
            if (ref->act == ActFormat::F32)
                std::memcpy(xq.data() + i * xrb, x.data() + i * K, size_t(K) * 4);
            else
                kern::find_quantizer(ref->act, Isa::Scalar)(x.data() + i * K, xq.data() + i * xrb,
                                                            K);
        }
        std::vector<float> want(size_t(T * N));
        for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < T; ++i) {
                const void* xp[1] = {xq.data() + i * xrb};
                ref->dot(K, w.data() + n * dtype_row_bytes(t, K), xp, 1, &want[size_t(i * N + n)]);
            }
        for (Isa isa : isas_here()) {
            const auto* k = kern::exact_kernel(t, isa);
            if (!k) continue;
            // by_nx[g]: every row through the nx kernel in groups of g tokens.
            std::vector<std::vector<float>> by_nx(kern::kMaxNx + 1);
            for (int g = 1; g <= kern::kMaxNx; ++g) {  // every nx the kernels unroll for
                std::vector<float>& got = by_nx[size_t(g)];
                got.resize(want.size());
                for (int64_t n = 0; n < N; ++n)
                    for (int64_t i0 = 0; i0 < T; i0 += g) {
                        const int nx = int(std::min<int64_t>(g, T - i0));
                        const void* xp[kern::kMaxNx];
                        float out[kern::kMaxNx];
                        for (int j = 0; j < nx; ++j) xp[j] = xq.data() + (i0 + j) * xrb;
                        k->dot(K, w.data() + n * dtype_row_bytes(t, K), xp, nx, out);
                        for (int j = 0; j < nx; ++j) got[size_t((i0 + j) * N + n)] = out[j];
                    }
                std::string first;
                const double e = nmse(got, want, N, &first);
                EXPECT_LT(e, 1e-10) << dtype_name(t) << " isa=" << kern::isa_name(isa) << " K=" << K
                                    << " T=" << T << " nx=" << g << " nmse=" << e << first;
            }
            if (k->rows) {  // the single-token row loop, staging in a 64-byte aligned buffer
                std::vector<float> got(want.size());
                std::vector<uint8_t> stage_buf(size_t(kern::rows_stage_bytes(K)) + 64);
                void* stage =
                    stage_buf.data() + (64 - reinterpret_cast<uintptr_t>(stage_buf.data()) % 64);
                for (int64_t i = 0; i < T; ++i)
                    k->rows(K, w.data(), dtype_row_bytes(t, K), N, xq.data() + i * xrb,
                            got.data() + i * N, stage);
                std::string first;
                const double e = nmse(got, want, N, &first);
                EXPECT_LT(e, 1e-10) << dtype_name(t) << " isa=" << kern::isa_name(isa)
                                    << " rows K=" << K << " nmse=" << e << first;
                // Batch invariance (SessionOptions::deterministic) needs the row loop to sum
                // exactly as the nx kernels do, for every nx.
                for (int g = 1; g <= kern::kMaxNx; ++g) {
                    int mismatches = 0;
                    for (size_t i = 0; i < got.size(); ++i)
                        mismatches += by_nx[size_t(g)][i] != got[i];
                    EXPECT_EQ(mismatches, 0)
                        << dtype_name(t) << " isa=" << kern::isa_name(isa) << " K=" << K
                        << " nx=" << g << ": rows differ from the nx kernel";
                }
            }
        }
    }
}

// MXFP4 with the E8M0 exponents at both ends of their range: 0-3 (scales 2^-128..2^-125, the
// first two subnormal as floats) against activation scales near 1e20, 250-254 against ~1e-25, so
// every product is a normal float and every block counts. The AVX-512 kernel applies the
// exponent with vscalefps, the reference multiplies by the scale's float: both round the same
// product once, so the two agree to the order of additions.
TEST(KernelsMxfp4, ExtremeExponentsMatchScalarVecDot) {
    std::mt19937 rng(17);
    const int64_t N = 8, K = 288;  // 9 blocks: two 4-block steps and a tail
    const int64_t nb = K / 32, wrb = dtype_row_bytes(DType::MXFP4, K);
    const int64_t xrb = kern::act_row_bytes(ActFormat::Q8x32, K);
    for (const bool low : {true, false}) {
        std::vector<uint8_t> w(size_t(N * wrb));
        for (auto& b : w) b = uint8_t(rng());
        for (int64_t i = 0; i < N * nb; ++i)
            w[size_t(i * 17)] = uint8_t(low ? rng() % 4 : 250 + rng() % 5);
        const int T = 3;
        std::vector<uint8_t> xq(size_t(T * xrb));
        for (int64_t i = 0; i < T * nb; ++i) {  // BlockQ8x32 built directly: d beyond f16
            kern::BlockQ8x32 blk{};
            blk.d = float(low ? 1e20 : 1e-25) * (1.0f + float(rng() % 1000) / 1000.0f);
            for (auto& q : blk.qs) q = int8_t(int(rng() % 255) - 127), blk.sum += q;
            std::memcpy(xq.data() + i * int64_t(sizeof blk), &blk, sizeof blk);
        }
        const auto* ref = kern::exact_kernel(DType::MXFP4, Isa::Scalar);
        std::vector<float> want(size_t(T * N));
        for (int t = 0; t < T; ++t)
            for (int64_t n = 0; n < N; ++n) {
                const void* xp[1] = {xq.data() + t * xrb};
                ref->dot(K, w.data() + n * wrb, xp, 1, &want[size_t(t * N + n)]);
            }
        for (Isa isa : isas_here()) {
            const auto* k = kern::exact_kernel(DType::MXFP4, isa);
            std::vector<float> got(want.size()), rows(want.size());
            for (int64_t n = 0; n < N; ++n) {
                const void* xp[T];
                float out[T];
                for (int t = 0; t < T; ++t) xp[t] = xq.data() + t * xrb;
                k->dot(K, w.data() + n * wrb, xp, T, out);
                for (int t = 0; t < T; ++t) got[size_t(t * N + n)] = out[t];
            }
            std::string first;
            const double e = nmse(got, want, N, &first);
            EXPECT_LT(e, 1e-10) << "isa=" << kern::isa_name(isa) << " low=" << low << " nmse=" << e
                                << first;
            if (!k->rows) continue;
            std::vector<uint8_t> stage_buf(size_t(kern::rows_stage_bytes(K)) + 64);
            void* stage =
                stage_buf.data() + (64 - reinterpret_cast<uintptr_t>(stage_buf.data()) % 64);
            for (int t = 0; t < T; ++t)
                k->rows(K, w.data(), wrb, N, xq.data() + t * xrb, rows.data() + t * N, stage);
            EXPECT_EQ(rows, got) << "isa=" << kern::isa_name(isa) << " low=" << low
                                 << ": rows differ from the nx kernel";
        }
    }
}

// ops::matmul on each ISA against dequantize + f32 dot. The only approximation is the int8
// activation quantization: per element the rounding error is uniform in ±d/2 with
// d = absmax(block) / 127, so nmse ≈ (absmax/σ)^2 / (12 · 127^2): ~2.5e-5 for 32-blocks of
// normal data (absmax ≈ 2.1σ), ~4e-5 for 256-blocks (≈ 2.8σ). Bounds: 4x those; f32: 1e-10.
TEST_P(KernelsByType, MatmulMatchesDequantizedReference) {
    const DType t = GetParam();
    std::mt19937 rng(uint32_t(t) + 100);
    const ActFormat f = kern::act_format(t);
    const double bound = f == ActFormat::F32 ? 1e-10 : f == ActFormat::Q8x32 ? 1e-4 : 1.6e-4;
    ThreadPool pool(2);
    const int64_t K = 512;
    for (int64_t N : {37, 130}) {
        const auto w = random_weights(t, N, K, rng);
        const TensorView wv{t, Shape{N, K}, w.data()};
        for (int64_t T : {1, 7, 64}) {
            const auto x = random_acts(T, K, rng);
            std::vector<float> want(size_t(T * N));
            ref::matmul_dequant(x.data(), T, wv, want.data(), pool);
            for (Isa isa : isas_here()) {
                IsaGuard g(isa);
                std::vector<float> got(want.size(), NAN);
                ops::matmul(x.data(), T, wv, got.data(), pool);
                std::string first;
                const double e = nmse(got, want, N, &first);
                EXPECT_LT(e, bound) << dtype_name(t) << " isa=" << kern::isa_name(isa) << " N=" << N
                                    << " T=" << T << " nmse=" << e << first;
            }
        }
    }
}

// The prompt GEMM (groups of kGemmTokens tokens, AVX-512) inside ops::matmul_rows, on gathered
// token rows, against the scalar reference dot per element.
TEST_P(KernelsByType, PromptGemmMatchesScalarVecDot) {
    const DType t = GetParam();
    if (!kern::isa_supported(Isa::Avx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
    if (!kern::find_gemm(t, Isa::Avx512)) return;  // this type has no GEMM: dot kernels only
    std::mt19937 rng(uint32_t(t) + 7);
    const auto* ref = kern::exact_kernel(t, Isa::Scalar);
    // T: full groups + a pair group (at most kG / 2 tokens: 5, and 8 with no padding); full
    // groups + a padded partial group (12); full groups + a tail for the dot kernels (3); one
    // pair group only (7, and 4 at the GEMM's smallest tail).
    constexpr int64_t kG = kern::kGemmTokens;
    for (auto [K, T] : {std::pair<int64_t, int64_t>{256, 2 * kG + 5},
                        {768, 2 * kG + 5},
                        {768, kG + kG / 2},
                        {256, 2 * kG + 12},
                        {256, 2 * kG + 3},
                        {768, 7},
                        {256, 4}}) {
        const int64_t N = 37;
        const auto w = random_weights(t, N, K, rng);
        const TensorView wv{t, Shape{N, K}, w.data()};
        const auto x = random_acts(T, K, rng);
        // Rows in a scrambled order, as the MoE block gathers an expert's tokens.
        std::vector<int64_t> rows(static_cast<size_t>(T));
        for (int64_t i = 0; i < T; ++i) rows[size_t(i)] = (i * 11) % T;
        ops::PackedActs xa;
        kern::set_isa_override(Isa::Avx512);
        ThreadPool one(1);
        ops::pack_acts(x.data(), T, K, t, xa, one);
        std::vector<float> got(size_t(T * N), 0.0f);
        ops::matmul_rows(xa, rows.data(), T, wv, 3, N, got.data(), N);  // rows 3.. only
        kern::clear_isa_override();
        std::vector<float> want(size_t(T * N), 0.0f);
        for (int64_t i = 0; i < T; ++i)
            for (int64_t n = 3; n < N; ++n) {
                const void* xp[1] = {xa.row(rows[size_t(i)])};
                ref->dot(K, w.data() + n * dtype_row_bytes(t, K), xp, 1, &want[size_t(i * N + n)]);
            }
        std::string first;
        const double e = nmse(got, want, N, &first);
        EXPECT_LT(e, 1e-10) << dtype_name(t) << " K=" << K << " T=" << T << " nmse=" << e << first;
    }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, KernelsByType, testing::ValuesIn(kTypes),
                         [](const testing::TestParamInfo<DType>& i) {
                             return std::string(dtype_name(i.param));
                         });

// Rows gathered by index (the MoE expert path) equal the plain matmul's rows.
TEST(Kernels, MatmulRowsGathersTokens) {
    std::mt19937 rng(3);
    const int64_t N = 20, K = 256, T = 9;
    const auto w = random_weights(DType::Q4_K, N, K, rng);
    const TensorView wv{DType::Q4_K, Shape{N, K}, w.data()};
    const auto x = random_acts(T, K, rng);
    ThreadPool pool(2);
    std::vector<float> full(size_t(T * N));
    ops::matmul(x.data(), T, wv, full.data(), pool);
    ops::PackedActs a;
    ops::pack_acts(x.data(), T, K, DType::Q4_K, a, pool);
    const int64_t rows[3] = {8, 2, 5};
    std::vector<float> y(size_t(3 * N));
    ops::matmul_rows(a, rows, 3, wv, 0, N, y.data(), N);
    // 9 tokens go through the prompt GEMM where there is one, 3 through the dot kernels: the
    // same integer sums, f32 additions in another order.
    for (int i = 0; i < 3; ++i)
        for (int64_t n = 0; n < N; ++n)
            EXPECT_NEAR(y[size_t(i * N + n)], full[size_t(rows[i] * N + n)],
                        1e-5f * std::abs(full[size_t(rows[i] * N + n)]) + 1e-6f);
}

// Products of one x in one region: each output equals its own ops::matmul bit for bit (the same
// row tasks on x packed once per format) and the dequantized reference within the int8 bound
// of MatmulMatchesDequantizedReference; three activation formats and a 2-row matrix in a group.
TEST(Kernels, MatmulGroupEqualsSeparateMatmuls) {
    std::mt19937 rng(11);
    const int64_t K = 512;
    const DType types[] = {DType::Q4_K, DType::Q8_0, DType::F32, DType::MXFP4};
    const int64_t rows[] = {130, 37, 2, 64};
    std::vector<std::vector<uint8_t>> w;
    for (int i = 0; i < 4; ++i) w.push_back(random_weights(types[i], rows[i], K, rng));
    ThreadPool pool(3);
    for (int64_t T : {1, 7, 20}) {
        const auto x = random_acts(T, K, rng);
        for (Isa isa : isas_here()) {
            IsaGuard g(isa);
            std::vector<std::vector<float>> got(4), alone(4);
            std::vector<ops::MatmulOut> outs;
            for (int i = 0; i < 4; ++i) {
                got[size_t(i)].assign(size_t(T * rows[i]), NAN);
                alone[size_t(i)].assign(size_t(T * rows[i]), NAN);
                outs.push_back({TensorView{types[i], Shape{rows[i], K}, w[size_t(i)].data()},
                                got[size_t(i)].data()});
            }
            ops::matmul_group(x.data(), T, outs, pool);
            for (int i = 0; i < 4; ++i) {
                SCOPED_TRACE(std::string(dtype_name(types[i])) + " isa=" +
                             std::string(kern::isa_name(isa)) + " T=" + std::to_string(T));
                ops::matmul(x.data(), T, outs[size_t(i)].w, alone[size_t(i)].data(), pool);
                ASSERT_EQ(0, std::memcmp(got[size_t(i)].data(), alone[size_t(i)].data(),
                                         got[size_t(i)].size() * sizeof(float)));
                std::vector<float> want(got[size_t(i)].size());
                ref::matmul_dequant(x.data(), T, outs[size_t(i)].w, want.data(), pool);
                EXPECT_LT(nmse(got[size_t(i)], want, rows[i], nullptr),
                          types[i] == DType::F32 ? 1e-10 : 1.6e-4);
            }
        }
    }
}

TEST(ThreadPool, ManyShortRegionsRunEveryTaskOnce) {
    ThreadPool pool(3);
    std::vector<int> hits(64);
    for (int rep = 0; rep < 2000; ++rep) {
        std::fill(hits.begin(), hits.end(), 0);
        pool.parallel_for(int64_t(hits.size()), [&](int64_t i) { hits[size_t(i)]++; });
        for (int h : hits) ASSERT_EQ(h, 1);
    }
}

}  // namespace
}  // namespace moe
