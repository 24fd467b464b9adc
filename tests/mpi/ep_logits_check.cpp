// Expert parallelism vs one process, run under `mpirun -np N` (tests/CMakeLists.txt registers
// one run per N): for every fixture family with experts (f32, and quantized files), each rank
// evaluates the fixture's tokens with the experts split over the ranks; rank 0 also evaluates
// them alone, in the same process, without the split. Checked:
//   - the split logits equal the single-process ones within max_rel 1e-6 (on every rank: the
//     combine gives every rank the same bits, so each rank's logits are also compared with
//     rank 0's, exactly);
//   - f32 files: the split logits are within the f32 bound of the fixture's float64 reference
//     (max_rel 1e-4; OLMoE 1e-3, tests/test_models.cpp says why), an independent reference.
// Both combine paths (gather, alltoallv: --ep-combine) are run and checked.
// Placement: contiguous, or with --balanced a balanced one from made-up loads (which gives
// every rank non-contiguous experts). Prints "N passed, N failed" on rank 0; exit 1 on failure.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../fixtures.h"
#include "core/mapped_file.h"
#include "models/model.h"
#include "parallel/comm.h"
#include "parallel/expert_parallel.h"
#include "runtime/session.h"

namespace {

using namespace moe;
using test::max_rel;
using test::read_f32;

struct Case {
    std::string file, ref_dir;  // ref_dir: fixture folder with ref.json (+ ref_logits.f32)
    double ref_bound;           // max_rel vs the float64 reference (0: not checked)
};

Result<std::vector<float>> eval(const Model& m, const std::vector<int32_t>& toks) {
    SessionOptions so;
    so.n_threads = 1;
    so.n_ctx = 64;
    so.n_batch = int(toks.size());
    MOE_TRY(auto s, Session::create(m, so));
    return s->eval_tokens(toks, /*all_logits=*/true);
}

}  // namespace

int main(int argc, char** argv) {
    const std::string fixtures = argc > 1 ? argv[1] : "../shared/fixtures";
    const bool balanced = argc > 2 && std::string(argv[2]) == "--balanced";
    auto comm_r = make_mpi_comm();
    if (!comm_r) {
        std::fprintf(stderr, "error: %s\n", comm_r.message().c_str());
        return 1;
    }
    Comm& comm = **comm_r;
    const int rank = comm.rank();
    const std::string M = fixtures + "/models/";
    const std::vector<Case> cases = {
        {M + "mixtral-f32.gguf", M + "mixtral", 1e-4},
        {M + "qwen2moe-f32.gguf", M + "qwen2moe", 1e-4},
        {M + "qwen3moe-f32.gguf", M + "qwen3moe", 1e-4},
        {M + "olmoe-f32.gguf", M + "olmoe", 1e-3},
        {M + "deepseek2-f32.gguf", M + "deepseek2", 1e-4},
        {M + "deepseek3-f32.gguf", M + "deepseek3", 1e-4},
        {M + "gptoss-f32.gguf", M + "gptoss", 1e-4},
        {M + "mixtral-q4_k_m.gguf", M + "mixtral", 0},
        {M + "gptoss-mxfp4_moe.gguf", M + "gptoss", 0},
        {M + "deepseek3-q4_k_m.gguf", M + "deepseek3", 0},
    };
    set_weight_memory(WeightMemory::Map);
    int passed = 0, failed = 0;
    for (const Case& c : cases) {
        std::ifstream rj(c.ref_dir + "/ref.json");
        const auto ref = nlohmann::json::parse(rj, nullptr, false);
        if (ref.is_discarded()) {
            std::fprintf(stderr, "error: rank %d: cannot read %s/ref.json\n", rank,
                         c.ref_dir.c_str());
            comm.abort(1);
        }
        const auto toks = ref["tokens"].get<std::vector<int32_t>>();
        std::vector<float> single;
        if (rank == 0) {
            auto m = load_model(c.file);
            auto l = m ? eval(**m, toks) : Result<std::vector<float>>(m.error());
            if (!l) {
                std::fprintf(stderr, "error: %s: %s\n", c.file.c_str(), l.message().c_str());
                comm.abort(1);
            }
            single = std::move(*l);
        }
        auto m = load_model(c.file);
        if (!m) {
            std::fprintf(stderr, "error: rank %d: %s\n", rank, m.message().c_str());
            comm.abort(1);
        }
        ExpertParallelOptions o;
        if (balanced) {  // made-up loads: expert e of layer l weighs (5e + 3l) mod 11 + 1
            o.placement = Placement::Balanced;
            o.routing_stats = "/tmp/moe-ep-check-" + std::to_string(getpid()) + ".json";
            nlohmann::json j;
            for (int l = 0; l < (*m)->config.n_moe_layers(); ++l) {
                std::vector<int> cnt;
                for (int e = 0; e < (*m)->config.moe.n_expert; ++e)
                    cnt.push_back((5 * e + 3 * l) % 11 + 1);
                j["layers"].push_back({{"counts", cnt}});
            }
            std::ofstream(o.routing_stats) << j.dump();
        }
        auto ep = attach_expert_parallel(**m, comm, o);
        if (!o.routing_stats.empty()) std::remove(o.routing_stats.c_str());
        if (!ep) {
            std::fprintf(stderr, "error: rank %d: %s\n", rank, ep.message().c_str());
            comm.abort(1);
        }
        std::vector<float> gathered;  // the gather path's logits: the other path gives the same
        for (const CombineMode mode : {CombineMode::Gather, CombineMode::Alltoallv}) {
            (*ep)->set_combine(mode);
            const char* path = mode == CombineMode::Gather ? "gather" : "alltoallv";
            auto split = eval(**m, toks);
            if (!split) {
                std::fprintf(stderr, "error: rank %d: %s\n", rank, split.message().c_str());
                comm.abort(1);
            }
            // Every rank's logits against rank 0's, bit for bit.
            std::vector<float> r0 = *split;
            if (auto b = comm.bcast(r0.data(), r0.size() * 4, 0); !b) comm.abort(1);
            int same = std::memcmp(r0.data(), split->data(), r0.size() * 4) == 0;
            auto all_same = comm.allgather(std::to_string(same));
            // The path taken: every combine of the run (one per MoE layer) went that way.
            const ExpertParallelStats& st = (*ep)->ep_stats();
            const bool took = mode == CombineMode::Gather ? st.combines_alltoallv == 0
                                                          : st.combines_alltoallv == st.combines;
            (*ep)->reset_ep_stats();
            if (rank != 0) continue;
            bool ok = took;
            std::string why = took ? "" : " combine path not taken;";
            for (const auto& s : *all_same)
                if (s != "1") ok = false, why += " ranks' logits differ;";
            const double vs_single = max_rel(*split, single);
            if (!(vs_single <= 1e-6)) ok = false, why += " vs single process;";
            if (mode == CombineMode::Gather)
                gathered = *split;
            else if (std::memcmp(gathered.data(), split->data(), gathered.size() * 4) != 0)
                ok = false, why += " the two paths differ;";
            double vs_ref = 0;
            if (c.ref_bound > 0) {
                vs_ref = max_rel(*split, read_f32(c.ref_dir + "/ref_logits.f32"));
                if (!(vs_ref < c.ref_bound)) ok = false, why += " vs float64 reference;";
            }
            std::printf("%s np=%d%s %s %s: max_rel vs one process %.3g, vs reference %.3g%s\n",
                        ok ? "ok  " : "FAIL", comm.size(), balanced ? " balanced" : "", path,
                        c.file.substr(M.size()).c_str(), vs_single, vs_ref, why.c_str());
            (ok ? passed : failed)++;
        }
    }
    if (rank == 0) std::printf("%d passed, %d failed\n", passed, failed);
    int code = failed > 0;  // every rank exits with rank 0's verdict
    if (!comm.bcast(&code, sizeof(code), 0)) comm.abort(1);
    return code;
}
