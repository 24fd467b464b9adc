#include "models/expert_cache.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "core/mapped_file.h"
#include "core/sysinfo.h"
#include "formats/model_source.h"
#include "formats/override_source.h"
#include "models/kv_layout.h"
#include "models/model.h"

namespace moe {

Result<CachePolicy> parse_cache_policy(const std::string& s) {
    if (s == "lru") return CachePolicy::Lru;
    if (s == "lfru") return CachePolicy::Lfru;
    return make_error("--cache-policy '{}': expected lru or lfru", s);
}

const char* cache_policy_name(CachePolicy p) {
    return p == CachePolicy::Lru ? "lru" : "lfru";
}

namespace {

constexpr uint64_t kAlign = 64;
uint64_t align_up(uint64_t n) {
    return (n + kAlign - 1) / kAlign * kAlign;
}

// Where one expert's three matrices lie in the file, and where they go in a slot.
struct ExpertLoc {
    uint64_t off[3] = {}, len[3] = {};  // file offset, bytes: gate, up, down
    uint64_t at[3] = {};                // offset in the slot
};

enum class SlotState : uint8_t { Empty, Loading, Ready, Failed };

struct Slot {
    int32_t key = -1;  // il * n_expert + e, or -1
    int pins = 0;
    SlotState state = SlotState::Empty;
    uint64_t last_use = 0;
    bool prefetched = false;  // filled by a prediction and not accessed since
    std::string error;
};

class ExpertCache final : public ExpertStore {
  public:
    ExpertCache(const Model& m, std::string path, int fd, uint64_t file_size, uint8_t* pool,
                uint64_t pool_len, uint64_t slots, uint64_t slot_bytes, CachePolicy policy,
                int io_threads, bool prefetch, std::vector<ExpertLoc> locs)
        : path_(std::move(path)),
          fd_(fd),
          file_size_(file_size),
          pool_(pool),
          pool_len_(pool_len),
          slot_bytes_(slot_bytes),
          policy_(policy),
          prefetch_(prefetch),
          n_expert_(m.config.moe.n_expert),
          locs_(std::move(locs)),
          slots_(slots),
          where_(locs_.size(), -1),
          freq_(locs_.size(), 0),
          predicted_(locs_.size(), 0) {
        stats_.cached = true;
        stats_.prefetch = prefetch;
        stats_.policy = cache_policy_name(policy);
        stats_.slots = slots;
        stats_.slot_bytes = slot_bytes;
        stats_.layers.resize(m.layers.size());
        views_.resize(m.layers.size());
        window_.resize(m.layers.size());
        for (int il = 0; il < int(m.layers.size()); ++il) {
            // Types, shapes and biases of the model's own views; data pointers set per slot.
            views_[size_t(il)] = resident_expert_views(m, il);
            for (auto& v : views_[size_t(il)]) v.gate.data = v.up.data = v.down.data = nullptr;
        }
        for (int i = 0; i < io_threads; ++i) io_.emplace_back([this] { io_loop(); });
    }

    ~ExpertCache() override {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        work_cv_.notify_all();
        for (auto& t : io_) t.join();
        ::munmap(pool_, pool_len_);
        ::close(fd_);
    }

    Result<size_t> acquire(int il, std::span<const int32_t> active) override {
        std::unique_lock lock(mu_);
        auto& win = window_[size_t(il)];
        win.clear();
        ExpertLayerStats& st = stats_.layers[size_t(il)];
        bool queued = false;
        for (const int32_t e : active) {
            const int32_t key = il * n_expert_ + e;
            if (predicted_[size_t(key)]) ++st.predicted_used, predicted_[size_t(key)] = 0;
            int32_t s = where_[size_t(key)];
            if (s >= 0) {
                ++st.hits;
                if (slots_[size_t(s)].prefetched) ++st.prefetch_hits;
                touch_frequency(key);
            } else {
                s = take_victim(lock, il, -1);
                if (s < 0) break;  // every slot pinned: the caller computes these first
                touch_frequency(key);
                start_read(s, il, e, demand_);
                queued = true;
                ++st.misses;
            }
            Slot& sl = slots_[size_t(s)];
            sl.prefetched = false;
            ++sl.pins;
            sl.last_use = ++tick_;
            win.push_back(s);
        }
        if (queued) work_cv_.notify_all();
        if (win.empty())
            return make_error("expert cache: no free slot (all {} pinned)", slots_.size());
        return win.size();
    }

    Result<size_t> wait_ready(int il, size_t from) override {
        std::unique_lock lock(mu_);
        const auto& win = window_[size_t(il)];
        Slot& first = slots_[size_t(win[from])];
        if (first.state == SlotState::Loading) {
            const auto t0 = std::chrono::steady_clock::now();
            done_cv_.wait(lock, [&] { return first.state != SlotState::Loading; });
            stats_.layers[size_t(il)].stall_s +=
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        if (first.state == SlotState::Failed) {
            std::string e = first.error;
            where_[size_t(first.key)] = -1;
            first.key = -1, first.state = SlotState::Empty;
            return make_error("{}", e);
        }
        size_t end = from + 1;
        while (end < win.size() && slots_[size_t(win[end])].state == SlotState::Ready) ++end;
        return end;
    }

    std::span<const ops::ExpertWeights> views(int il) const override { return views_[size_t(il)]; }

    bool wants_prediction() const override { return prefetch_; }

    // Marks the prediction (counted against the next acquire of il) and reads the predicted
    // experts it does not hold into victims chosen by the policy, never evicting another
    // expert of this prediction. Not an access: frequencies stay, last use is now.
    void prefetch(int il, std::span<const int32_t> predicted) override {
        if (!prefetch_) return;
        std::unique_lock lock(mu_);
        ExpertLayerStats& st = stats_.layers[size_t(il)];
        const size_t base = size_t(il) * size_t(n_expert_);
        std::fill_n(predicted_.begin() + ptrdiff_t(base), n_expert_, uint8_t(0));
        for (const int32_t e : predicted) predicted_[base + size_t(e)] = 1;
        st.predicted += predicted.size();
        bool queued = false;
        for (const int32_t e : predicted) {
            if (where_[base + size_t(e)] >= 0) continue;
            const int32_t s = take_victim(lock, il, il);
            if (s < 0) break;  // the rest of the slots hold this prediction or are pinned
            start_read(s, il, e, prefetch_queue_);
            Slot& sl = slots_[size_t(s)];
            sl.prefetched = true;
            sl.last_use = ++tick_;
            ++st.prefetched;
            queued = true;
        }
        if (queued) work_cv_.notify_all();
    }

    void release(int il) override {
        std::lock_guard lock(mu_);
        for (const int32_t s : window_[size_t(il)]) --slots_[size_t(s)].pins;
        window_[size_t(il)].clear();
    }

    ExpertStoreStats stats() const override {
        std::lock_guard lock(mu_);
        return stats_;
    }
    void reset_stats() override {
        std::lock_guard lock(mu_);
        for (auto& l : stats_.layers) l = {};
    }

  private:
    void touch_frequency(int32_t key) {
        if (policy_ != CachePolicy::Lfru) return;
        ++freq_[size_t(key)];
        if (++accesses_ % slots_.size() == 0)
            for (auto& f : freq_) f /= 2;
    }

    // The unpinned slot to refill: an empty one, else by policy; -1 when all are pinned.
    // `spare` >= 0: slots holding that layer's predicted experts are not candidates. A slot
    // still being read (an unused prefetch) is a candidate like any other, so the counts do not
    // depend on I/O timing; take_victim waits for its read to end.
    int32_t victim(int spare) const {
        int32_t best = -1;
        for (int32_t s = 0; s < int32_t(slots_.size()); ++s) {
            const Slot& sl = slots_[size_t(s)];
            if (sl.pins > 0) continue;
            if (sl.key < 0) return s;
            if (spare >= 0 && sl.key / n_expert_ == spare && predicted_[size_t(sl.key)]) continue;
            if (best < 0 || worse(sl, slots_[size_t(best)])) best = s;
        }
        return best;
    }
    int32_t take_victim(std::unique_lock<std::mutex>& lock, int il, int spare) {
        const int32_t s = victim(spare);
        if (s < 0 || slots_[size_t(s)].state != SlotState::Loading) return s;
        work_cv_.notify_all();  // reads queued by this call must not wait behind us
        const auto t0 = std::chrono::steady_clock::now();
        done_cv_.wait(lock, [&] { return slots_[size_t(s)].state != SlotState::Loading; });
        stats_.layers[size_t(il)].stall_s +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return s;
    }
    // Evicts slot s and queues the read of (il, e) into it.
    void start_read(int32_t s, int il, int e, std::deque<int32_t>& queue) {
        evict(s);
        const int32_t key = il * n_expert_ + e;
        Slot& sl = slots_[size_t(s)];
        sl.key = key, sl.state = SlotState::Loading, sl.error.clear(), sl.prefetched = false;
        where_[size_t(key)] = s;
        queue.push_back(s);
        point_views(il, e, s);
    }
    bool worse(const Slot& a, const Slot& b) const {  // a is the better victim
        if (policy_ == CachePolicy::Lfru && freq_[size_t(a.key)] != freq_[size_t(b.key)])
            return freq_[size_t(a.key)] < freq_[size_t(b.key)];
        return a.last_use < b.last_use;
    }
    void evict(int32_t s) {
        Slot& sl = slots_[size_t(s)];
        if (sl.key >= 0) where_[size_t(sl.key)] = -1;
        sl.key = -1, sl.state = SlotState::Empty;
    }
    void point_views(int il, int e, int32_t s) {
        const ExpertLoc& L = locs_[size_t(il * n_expert_ + e)];
        uint8_t* base = pool_ + uint64_t(s) * slot_bytes_;
        ops::ExpertWeights& v = views_[size_t(il)][size_t(e)];
        v.gate.data = base + L.at[0], v.up.data = base + L.at[1], v.down.data = base + L.at[2];
    }

    void io_loop() {
        for (;;) {
            int32_t s = -1, key = -1;
            {
                std::unique_lock lock(mu_);
                work_cv_.wait(
                    lock, [&] { return stop_ || !demand_.empty() || !prefetch_queue_.empty(); });
                if (stop_) return;
                // Reads the layer being computed waits for go before predictions.
                auto& q = demand_.empty() ? prefetch_queue_ : demand_;
                s = q.front();
                q.pop_front();
                key = slots_[size_t(s)].key;
            }
            std::string err = read_expert(key, pool_ + uint64_t(s) * slot_bytes_);
            {
                std::lock_guard lock(mu_);
                Slot& sl = slots_[size_t(s)];
                const ExpertLoc& L = locs_[size_t(key)];
                if (err.empty()) {
                    sl.state = SlotState::Ready;
                    stats_.layers[size_t(key / n_expert_)].bytes_read +=
                        L.len[0] + L.len[1] + L.len[2];
                } else {
                    sl.state = SlotState::Failed, sl.error = std::move(err);
                }
            }
            done_cv_.notify_all();
        }
    }

    std::string read_expert(int32_t key, uint8_t* dst) const {
        const ExpertLoc& L = locs_[size_t(key)];
        for (int m = 0; m < 3; ++m) {
            for (uint64_t done = 0; done < L.len[m];) {
                const ssize_t n =
                    ::pread(fd_, dst + L.at[m] + done, L.len[m] - done, off_t(L.off[m] + done));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                    const int en = errno;
                    struct stat st {};
                    const uint64_t need = L.off[m] + L.len[m];
                    if (::fstat(fd_, &st) == 0 && uint64_t(st.st_size) < need)
                        return fmt::format(
                            "'{}' shrank to {} bytes while running (expert {} needs bytes up to "
                            "{}; it had {})",
                            path_, uint64_t(st.st_size), key % n_expert_, need, file_size_);
                    return fmt::format("cannot read expert {} from '{}' at byte {}: {}",
                                       key % n_expert_, path_, L.off[m] + done,
                                       n < 0 ? std::strerror(en) : "unexpected end");
                }
                done += uint64_t(n);
            }
            // Our copy is in the slot; the page cache's would count against the machine.
            ::posix_fadvise(fd_, off_t(L.off[m]), off_t(L.len[m]), POSIX_FADV_DONTNEED);
        }
        return {};
    }

    const std::string path_;
    const int fd_;
    const uint64_t file_size_;
    uint8_t* const pool_;
    const uint64_t pool_len_, slot_bytes_;
    const CachePolicy policy_;
    const bool prefetch_;
    const int n_expert_;
    const std::vector<ExpertLoc> locs_;  // [n_layer * n_expert]

    mutable std::mutex mu_;
    std::condition_variable work_cv_, done_cv_;
    std::vector<Slot> slots_;
    std::vector<int32_t> where_;      // [n_layer * n_expert]: slot or -1
    std::vector<uint32_t> freq_;      // [n_layer * n_expert] (lfru)
    std::vector<uint8_t> predicted_;  // [n_layer * n_expert]: in the layer's last prediction
    uint64_t tick_ = 0, accesses_ = 0;
    std::deque<int32_t> demand_, prefetch_queue_;  // slots to read
    bool stop_ = false;
    std::vector<std::vector<ops::ExpertWeights>> views_;  // [n_layer][n_expert]
    std::vector<std::vector<int32_t>> window_;            // [n_layer]: pinned slots, in order
    ExpertStoreStats stats_;
    std::vector<std::thread> io_;
};

// The file holding the experts, when the model is one mapped GGUF file.
const MappedFile* gguf_mapping(const Model& m) {
    const ModelSource* src = m.source.get();
    if (const auto* o = dynamic_cast<const OverrideSource*>(src)) src = &o->inner();
    const auto* g = dynamic_cast<const GgufSource*>(src);
    return g ? &g->file().mapped() : nullptr;
}

// Locations of every (layer, expert) in the file ([n_layer * n_expert]; dense layers zero), the
// bytes of the largest slot, and the file ranges the experts cover.
Result<std::vector<ExpertLoc>> expert_locations(
    const Model& m, const MappedFile& f, uint64_t& slot_bytes,
    std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
    const int n_exp = m.config.moe.n_expert;
    std::vector<ExpertLoc> locs(m.layers.size() * size_t(n_exp));
    slot_bytes = 0;
    for (int il = 0; il < int(m.layers.size()); ++il) {
        const LayerWeights& L = m.layers[size_t(il)];
        if (!L.is_moe) continue;
        const TensorView* t[3] = {&L.moe.gate_exps, &L.moe.up_exps, &L.moe.down_exps};
        for (int k = 0; k < 3; ++k) {
            const auto* p = static_cast<const uint8_t*>(t[k]->data);
            if (p < f.data() || p + t[k]->nbytes() > f.data() + f.size())
                return make_error(
                    "layer {}: the experts are not stored in '{}' itself "
                    "(--mem-budget needs a GGUF file)",
                    il, f.path());
            const uint64_t off = uint64_t(p - f.data());
            ranges.emplace_back(off, off + uint64_t(t[k]->nbytes()));
        }
        for (int e = 0; e < n_exp; ++e) {
            ExpertLoc& loc = locs[size_t(il * n_exp + e)];
            uint64_t at = 0;
            for (int k = 0; k < 3; ++k) {
                const TensorView v = t[k]->slice(e);
                loc.off[k] = uint64_t(static_cast<const uint8_t*>(v.data) - f.data());
                loc.len[k] = uint64_t(v.nbytes());
                loc.at[k] = at;
                at = align_up(at + loc.len[k]);
            }
            slot_bytes = std::max(slot_bytes, at);
        }
    }
    return locs;
}

// Copies what is not an expert into memory: the gaps between the expert ranges.
Result<void> copy_non_experts(const MappedFile& f,
                              std::vector<std::pair<uint64_t, uint64_t>> ranges) {
    std::sort(ranges.begin(), ranges.end());
    uint64_t at = 0;
    for (const auto& [lo, hi] : ranges) {
        if (lo > at) MOE_TRY_VOID(copy_mapping_into_memory(f.data(), f.size(), at, lo, f.path()));
        at = std::max(at, hi);
    }
    if (at < f.size())
        MOE_TRY_VOID(copy_mapping_into_memory(f.data(), f.size(), at, f.size(), f.path()));
    return {};
}

double gib(uint64_t b) {
    return double(b) / double(uint64_t(1) << 30);
}

}  // namespace

uint64_t budget_buffer_bytes(const ModelConfig& c, int n_ctx) {
    // The activations of a prompt batch of up to 512 tokens (the default batch; never more than
    // the context): residual and sublayer rows, MoE rows, logits of every row (eval), plus
    // 64 MiB for the thread pool, allocator and code.
    const uint64_t T = uint64_t(std::min(512, n_ctx)), k = uint64_t(c.moe.n_expert_used),
                   ff = uint64_t(c.moe.n_ff_exp);
    return (uint64_t(64) << 20) +
           T * (k * ff * 4 * 4 + uint64_t(c.n_embd) * 4 * 8 + uint64_t(c.n_vocab) * 4);
}

BudgetFixedPart budget_fixed_part(const ModelConfig& c, uint64_t non_expert_bytes, int n_ctx,
                                  int n_seq, KvTypes kv_types) {
    BudgetFixedPart f;
    f.non_expert = non_expert_bytes;
    for (int il = 0; il < c.n_layer; ++il)
        f.kv += uint64_t(kv_layer_token_bytes(c, il, kv_types)) * uint64_t(std::max(0, n_ctx)) *
                uint64_t(std::max(1, n_seq));
    f.buffers = budget_buffer_bytes(c, n_ctx);
    return f;
}

uint64_t routed_expert_bytes(const Model& m) {
    uint64_t n = 0;
    for (const auto& L : m.layers)
        if (L.is_moe)
            n += uint64_t(L.moe.gate_exps.nbytes() + L.moe.up_exps.nbytes() +
                          L.moe.down_exps.nbytes());
    return n;
}

Result<std::shared_ptr<ExpertStore>> make_expert_cache(const Model& m, uint64_t slots,
                                                       CachePolicy policy, int io_threads,
                                                       bool prefetch) {
    const MappedFile* f = gguf_mapping(m);
    if (!f) return make_error("--mem-budget needs a GGUF file ({} is not one)", m.source->path());
    if (m.config.n_moe_layers() == 0)
        return make_error("--mem-budget: the model has no MoE layers");
    uint64_t slot_bytes = 0;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    MOE_TRY(auto locs, expert_locations(m, *f, slot_bytes, ranges));
    if (slots < 1) return make_error("expert cache: no slots");
    const int fd = ::open(f->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error("cannot open '{}': {}", f->path(), std::strerror(errno));
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    const uint64_t len = slots * slot_bytes;
    void* pool = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pool == MAP_FAILED) {
        ::close(fd);
        return make_error("cannot allocate the expert cache ({} slots of {} bytes)", slots,
                          slot_bytes);
    }
    return std::shared_ptr<ExpertStore>(new ExpertCache(
        m, f->path(), fd, f->size(), static_cast<uint8_t*>(pool), len, slots, slot_bytes, policy,
        std::clamp(io_threads, 1, 16), prefetch, std::move(locs)));
}

Result<uint64_t> keep_owned_experts_resident(const Model& m,
                                             const std::function<bool(int, int)>& owned) {
    const MappedFile* f = gguf_mapping(m);
    if (!f || f->loaded()) return uint64_t(0);
    uint64_t slot_bytes = 0;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    MOE_TRY(auto locs, expert_locations(m, *f, slot_bytes, ranges));
    MOE_TRY_VOID(copy_non_experts(*f, ranges));
    uint64_t bytes = f->size() - std::min<uint64_t>(f->size(), routed_expert_bytes(m));
    const int n_exp = m.config.moe.n_expert;
    for (int il = 0; il < int(m.layers.size()); ++il) {
        if (!m.layers[size_t(il)].is_moe) continue;
        for (int k = 0; k < 3; ++k) {  // runs of owned experts: one copy per run and tensor
            for (int e = 0; e < n_exp;) {
                if (!owned(il, e)) {
                    ++e;
                    continue;
                }
                int end = e;
                while (end < n_exp && owned(il, end)) ++end;
                const ExpertLoc& a = locs[size_t(il * n_exp + e)];
                const ExpertLoc& b = locs[size_t(il * n_exp + end - 1)];
                MOE_TRY_VOID(copy_mapping_into_memory(f->data(), f->size(), a.off[k],
                                                      b.off[k] + b.len[k], f->path()));
                bytes += b.off[k] + b.len[k] - a.off[k];
                e = end;
            }
        }
    }
    return bytes;
}

Result<BudgetPlan> attach_expert_cache(Model& m, const ExpertBudget& b, std::string& note) {
    const MappedFile* f = gguf_mapping(m);
    if (!f) return make_error("--mem-budget needs a GGUF file ({} is not one)", m.source->path());
    if (m.config.n_moe_layers() == 0)
        return make_error("--mem-budget: the model has no MoE layers");
    if (f->loaded()) return make_error("--mem-budget: the file was loaded, not mapped (internal)");
    BudgetPlan p;
    p.budget = uint64_t(b.budget_gib * double(uint64_t(1) << 30));
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    MOE_TRY(auto locs, expert_locations(m, *f, p.slot_bytes, ranges));
    p.expert_bytes = routed_expert_bytes(m);
    const ModelConfig& c = m.config;
    const int n_ctx =
        b.n_ctx > 0 ? b.n_ctx : std::min(c.n_ctx_train > 0 ? c.n_ctx_train : 4096, 4096);
    const uint64_t non_expert = f->size() - std::min<uint64_t>(f->size(), p.expert_bytes);
    const BudgetFixedPart fixed = budget_fixed_part(c, non_expert, n_ctx, b.n_seq, b.kv_types);
    p.kv = fixed.kv;
    p.buffers = fixed.buffers;
    const auto pm0 = read_process_memory();
    const uint64_t rss0 = pm0 ? pm0->rss : 0;
    if (b.slots > 0) {
        MOE_TRY_VOID(copy_non_experts(*f, ranges));
        p.slots = b.slots;
        MOE_TRY(m.experts, make_expert_cache(m, p.slots, b.policy, b.io_threads, b.prefetch));
        note = fmt::format(
            "expert cache: {} slots of {:.1f} MiB (--cache-slots), policy {}, prefetch {}", p.slots,
            double(p.slot_bytes) / (1 << 20), cache_policy_name(b.policy),
            b.prefetch ? "on" : "off");
        return p;
    }
    p.min_budget = rss0 + fixed.total() + uint64_t(c.moe.n_expert_used) * p.slot_bytes;
    if (p.budget < p.min_budget)
        return make_error(
            "--mem-budget {:.2f} GiB is below this model's minimum of {:.2f} GiB "
            "(non-expert weights {:.2f} + KV at {} tokens {:.2f} + buffers {:.2f} + "
            "one layer's top-{} experts {:.2f})",
            b.budget_gib, gib(p.min_budget), gib(non_expert), n_ctx, gib(p.kv),
            gib(p.buffers + rss0), c.moe.n_expert_used,
            gib(uint64_t(c.moe.n_expert_used) * p.slot_bytes));
    if (p.budget >= rss0 + f->size() + p.kv + p.buffers) {
        p.all_resident = true;
        p.resident = rss0 + f->size() + p.kv + p.buffers;
        note = fmt::format(
            "--mem-budget {:.2f} GiB holds the whole model ({:.2f} GiB with KV and "
            "buffers): experts stay resident",
            b.budget_gib, gib(p.resident));
        MOE_TRY_VOID(populate_mapping(f->data(), f->size(), f->path(), nullptr));
        return p;
    }
    MOE_TRY_VOID(copy_non_experts(*f, ranges));
    const auto pm = read_process_memory();
    p.resident = (pm ? pm->rss : rss0 + non_expert) + p.kv + p.buffers;
    if (p.budget < p.resident + uint64_t(c.moe.n_expert_used) * p.slot_bytes)
        return make_error(
            "--mem-budget {:.2f} GiB is below this model's minimum of {:.2f} GiB "
            "(measured resident part {:.2f} + one layer's top-{} experts {:.2f})",
            b.budget_gib, gib(p.resident + uint64_t(c.moe.n_expert_used) * p.slot_bytes),
            gib(p.resident), c.moe.n_expert_used,
            gib(uint64_t(c.moe.n_expert_used) * p.slot_bytes));
    p.slots = (p.budget - p.resident) / p.slot_bytes;
    const uint64_t all = uint64_t(c.n_moe_layers()) * uint64_t(c.moe.n_expert);
    p.slots = std::min(p.slots, all);
    MOE_TRY(m.experts, make_expert_cache(m, p.slots, b.policy, b.io_threads, b.prefetch));
    note = fmt::format(
        "expert cache: {} of {} experts ({:.2f} GiB in slots of {:.1f} MiB), "
        "resident part {:.2f} GiB, policy {}, prefetch {}",
        p.slots, all, gib(p.slots * p.slot_bytes), double(p.slot_bytes) / (1 << 20),
        gib(p.resident), cache_policy_name(b.policy), b.prefetch ? "on" : "off");
    return p;
}

}  // namespace moe
