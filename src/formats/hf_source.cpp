// A Hugging Face checkpoint folder presented as the upstream HF->GGUF converter would have written
// it: GGUF metadata keys from config.json, GGUF tensor names, experts stacked, and the converter's
// tensor transforms applied. The per-family knowledge lives in hf_families.cpp; this file plans
// every output tensor at open time (validating shapes, so nothing can fail later) and builds the
// transformed ones on first access. Untransformed tensors are zero-copy views into the mapping.
#include "formats/hf_source.h"
#include "core/input_file.h"
#include "formats/hf_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/half.h"
#include "formats/hf_families.h"
#include "formats/safetensors.h"

namespace moe {

namespace {

using hf::Op;

struct PlannedTensor {
    std::string name;  // GGUF name
    Op op = Op::Copy;
    std::vector<const SafetensorsTensor*> src;  // one, or n_expert for Op::Stack
    Shape shape;                                // output shape
    DType dtype = DType::F32;                   // output dtype
    int64_t n_head = 0;                         // PermuteQ/K, KvBTo*
    int64_t nope = 0, v_dim = 0;                // KvBTo*
    bool zero_copy = false;
};

struct PlanParams {
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t n_expert = 0;
    int64_t qk_nope = 0;
    int64_t v_head = 0;
};

int elem_bytes(DType t) {
    return t == DType::F32 ? 4 : 2;
}

// The converter keeps these in f32 whatever the output type: 1-D tensors, norms, router weights
// and anything that is not a ".weight" (biases).
bool forced_f32(const std::string& name, const Shape& shape) {
    return shape.rank <= 1 || name.ends_with("_norm.weight") ||
           name.find("ffn_gate_inp") != std::string::npos || !name.ends_with(".weight");
}

std::string substitute(std::string_view pattern, int64_t layer, int64_t expert) {
    std::string out(pattern);
    for (auto [key, val] : {std::pair<const char*, int64_t>{"{i}", layer}, {"{e}", expert}}) {
        for (size_t pos; (pos = out.find(key)) != std::string::npos;)
            out.replace(pos, 3, std::to_string(val));
    }
    return out;
}

// Python's str.title(): a letter is upper-cased when it follows a non-letter, lower-cased
// otherwise. This is how the converter derives general.name from the folder name.
std::string title_case(const std::string& s) {
    std::string out = s;
    bool prev_letter = false;
    for (char& c : out) {
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (letter) c = prev_letter ? char(std::tolower(c)) : char(std::toupper(c));
        prev_letter = letter;
    }
    return out;
}

inline void copy_elem(uint8_t* d, const uint8_t* s, int es) {
    if (es == 4)
        std::memcpy(d, s, 4);
    else
        std::memcpy(d, s, 2);
}

bool is_mxfp4_op(Op op) {
    return op == Op::MxfpGateEven || op == Op::MxfpGateOdd || op == Op::MxfpRows;
}

// HF packed MXFP4 (see Op::MxfpRows) -> MXFP4 blocks [u8 e | u8 qs[16]], whose qs[j] holds
// element j (low nibble) and j + 16 (high). src = {blocks [E, R, G, 16], scales [E, R, G]}.
std::vector<uint8_t> repack_mxfp4(const PlannedTensor& p) {
    constexpr int kBlockBytes = 17;
    const SafetensorsTensor &blocks = *p.src[0], &scales = *p.src[1];
    const int64_t E = blocks.shape[0], R = blocks.shape[1], G = blocks.shape[2];
    const int64_t rows = p.shape[1];  // output rows per expert
    std::vector<uint8_t> out(size_t(E * rows * G * kBlockBytes));
    for (int64_t e = 0; e < E; ++e)
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t sr = p.op == Op::MxfpGateEven ? 2 * r
                               : p.op == Op::MxfpGateOdd ? 2 * r + 1
                                                         : r;  // source row
            for (int64_t g = 0; g < G; ++g) {
                const int64_t src_block = (e * R + sr) * G + g;
                const uint8_t* b = blocks.data + src_block * 16;
                uint8_t* d = out.data() + ((e * rows + r) * G + g) * kBlockBytes;
                d[0] = scales.data[src_block];
                auto nibble = [&](int i) { return (i & 1) ? b[i >> 1] >> 4 : b[i >> 1] & 0x0F; };
                for (int j = 0; j < 16; ++j) d[1 + j] = uint8_t(nibble(j) | nibble(j + 16) << 4);
            }
        }
    return out;
}

// Builds the output of a planned tensor in the source dtype, then converts to the output dtype.
std::vector<uint8_t> materialize(const PlannedTensor& p) {
    if (is_mxfp4_op(p.op)) return repack_mxfp4(p);
    const SafetensorsTensor& s0 = *p.src[0];
    const int es = elem_bytes(s0.dtype);
    const int64_t n = p.shape.numel();
    std::vector<uint8_t> tmp(size_t(n) * es);
    uint8_t* out = tmp.data();
    const uint8_t* in = s0.data;

    switch (p.op) {
        case Op::Copy:
            std::memcpy(out, in, tmp.size());
            break;
        case Op::PermuteQ:
        case Op::PermuteK: {
            // rows viewed as [n_head, 2, hd/2] -> [n_head, hd/2, 2]
            const int64_t rows = s0.shape[0];
            const int64_t row_bytes = int64_t(s0.nbytes) / rows;
            const int64_t hd = rows / p.n_head, half = hd / 2;
            for (int64_t o = 0; o < rows; ++o) {
                const int64_t h = o / hd, j = (o % hd) / 2, sgn = o % 2;
                const int64_t i = h * hd + sgn * half + j;
                std::memcpy(out + o * row_bytes, in + i * row_bytes, size_t(row_bytes));
            }
            break;
        }
        case Op::Stack: {
            size_t off = 0;
            for (const SafetensorsTensor* s : p.src) {
                std::memcpy(out + off, s->data, s->nbytes);
                off += s->nbytes;
            }
            break;
        }
        case Op::KvBToK: {
            // src [n_head, nope + v, L] -> out [n_head, L, nope] (the nope rows, transposed)
            const int64_t L = s0.shape[1], per_head = p.nope + p.v_dim;
            for (int64_t h = 0; h < p.n_head; ++h)
                for (int64_t l = 0; l < L; ++l)
                    for (int64_t j = 0; j < p.nope; ++j)
                        copy_elem(out + ((h * L + l) * p.nope + j) * es,
                                  in + ((h * per_head + j) * L + l) * es, es);
            break;
        }
        case Op::KvBToV: {
            // src [n_head, nope + v, L] -> out [n_head, v, L] (the v rows as they are)
            const int64_t L = s0.shape[1], per_head = p.nope + p.v_dim;
            const int64_t row_bytes = L * es;
            for (int64_t h = 0; h < p.n_head; ++h)
                std::memcpy(out + h * p.v_dim * row_bytes, in + (h * per_head + p.nope) * row_bytes,
                            size_t(p.v_dim * row_bytes));
            break;
        }
        case Op::GateUpEven:
        case Op::GateUpOdd: {
            // weight [E, H, 2I] -> [E, I, H] taking column 2r (+1); bias [E, 2I] -> [E, I]
            const int par = p.op == Op::GateUpOdd ? 1 : 0;
            const int64_t E = s0.shape[0];
            const int64_t H = s0.shape.rank == 3 ? s0.shape[1] : 1;
            const int64_t I2 = s0.shape.last(), I = I2 / 2;
            for (int64_t e = 0; e < E; ++e)
                for (int64_t r = 0; r < I; ++r)
                    for (int64_t c = 0; c < H; ++c)
                        copy_elem(out + ((e * I + r) * H + c) * es,
                                  in + ((e * H + c) * I2 + 2 * r + par) * es, es);
            break;
        }
        case Op::TransposeLast2: {
            const int64_t E = s0.shape[0], A = s0.shape[1], B = s0.shape[2];
            for (int64_t e = 0; e < E; ++e)
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t a = 0; a < A; ++a)
                        copy_elem(out + ((e * B + b) * A + a) * es, in + ((e * A + a) * B + b) * es,
                                  es);
            break;
        }
    }

    if (p.dtype == s0.dtype) return tmp;
    // Only widening to f32 is ever planned.
    std::vector<uint8_t> f32(size_t(n) * 4);
    float* dst = reinterpret_cast<float*>(f32.data());
    for (int64_t k = 0; k < n; ++k) {
        uint16_t h;
        std::memcpy(&h, tmp.data() + k * 2, 2);
        dst[k] = s0.dtype == DType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
    }
    return f32;
}

class HfSource final : public ModelSource {
  public:
    HfSource(std::string dir, std::shared_ptr<SafetensorsSet> set,
             std::vector<std::pair<std::string, gguf::Value>> kv, std::vector<PlannedTensor> plan)
        : dir_(std::move(dir)),
          set_(std::move(set)),
          kv_(std::move(kv)),
          plan_(std::move(plan)),
          built_(plan_.size()) {
        for (size_t i = 0; i < kv_.size(); ++i) kv_index_.emplace(kv_[i].first, i);
        for (size_t i = 0; i < plan_.size(); ++i) plan_index_.emplace(plan_[i].name, i);
    }

    std::string path() const override { return dir_; }
    std::string format() const override { return "safetensors"; }
    uint64_t file_bytes() const override { return set_->total_bytes(); }
    const std::vector<std::pair<std::string, gguf::Value>>& metadata() const override {
        return kv_;
    }
    const gguf::Value* find(const std::string& key) const override {
        auto it = kv_index_.find(key);
        return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
    }
    std::vector<std::string> tensor_names() const override {
        std::vector<std::string> out;
        out.reserve(plan_.size());
        for (const auto& p : plan_) out.push_back(p.name);
        return out;
    }
    std::optional<TensorView> tensor(const std::string& name) const override {
        auto it = plan_index_.find(name);
        if (it == plan_index_.end()) return std::nullopt;
        const PlannedTensor& p = plan_[it->second];
        if (p.zero_copy) return TensorView{p.dtype, p.shape, p.src[0]->data};
        std::lock_guard<std::mutex> lock(mu_);
        auto& buf = built_[it->second];
        if (!buf) buf = std::make_unique<std::vector<uint8_t>>(materialize(p));
        return TensorView{p.dtype, p.shape, buf->data()};
    }

  private:
    std::string dir_;
    std::shared_ptr<SafetensorsSet> set_;
    std::vector<std::pair<std::string, gguf::Value>> kv_;
    std::unordered_map<std::string, size_t> kv_index_;
    std::vector<PlannedTensor> plan_;
    std::unordered_map<std::string, size_t> plan_index_;
    mutable std::mutex mu_;
    mutable std::vector<std::unique_ptr<std::vector<uint8_t>>> built_;
};

// Output shape of a rule applied to its source, with every dimension the op relies on checked.
Result<void> plan_shape(PlannedTensor& p, const PlanParams& pp) {
    const SafetensorsTensor& s = *p.src[0];
    const Shape& in = s.shape;
    switch (p.op) {
        case Op::Copy:
            p.shape = in;
            return {};
        case Op::PermuteQ:
        case Op::PermuteK: {
            const int64_t heads = p.op == Op::PermuteQ ? pp.n_head : pp.n_head_kv;
            if (in.rank < 1 || in.rank > 2 || heads <= 0 || in[0] % heads != 0 ||
                (in[0] / heads) % 2 != 0)
                return make_error("shape {} cannot be split into {} heads of even size", in.str(),
                                  heads);
            p.n_head = heads;
            p.shape = in;
            return {};
        }
        case Op::Stack: {
            if (in.rank > 3) return make_error("rank {} is too high to stack", in.rank);
            p.shape = Shape{};
            p.shape.dim[p.shape.rank++] = int64_t(p.src.size());
            for (int d = 0; d < in.rank; ++d) p.shape.dim[p.shape.rank++] = in[d];
            return {};
        }
        case Op::KvBToK:
        case Op::KvBToV: {
            if (in.rank != 2 || pp.n_head <= 0 || pp.qk_nope <= 0 || pp.v_head <= 0 ||
                in[0] != pp.n_head * (pp.qk_nope + pp.v_head))
                return make_error(
                    "shape {} does not match n_head {} x (qk_nope_head_dim {} + v_head_dim {})",
                    in.str(), pp.n_head, pp.qk_nope, pp.v_head);
            p.n_head = pp.n_head;
            p.nope = pp.qk_nope;
            p.v_dim = pp.v_head;
            p.shape = p.op == Op::KvBToK ? Shape{pp.n_head, in[1], pp.qk_nope}
                                         : Shape{pp.n_head, pp.v_head, in[1]};
            return {};
        }
        case Op::GateUpEven:
        case Op::GateUpOdd: {
            if ((in.rank != 2 && in.rank != 3) || in.last() % 2 != 0)
                return make_error("fused gate_up shape {} is not [E, (H,) 2*I]", in.str());
            p.shape = in.rank == 3 ? Shape{in[0], in[2] / 2, in[1]} : Shape{in[0], in[1] / 2};
            return {};
        }
        case Op::TransposeLast2: {
            if (in.rank != 3) return make_error("shape {} is not [E, A, B]", in.str());
            p.shape = Shape{in[0], in[2], in[1]};
            return {};
        }
        case Op::MxfpGateEven:
        case Op::MxfpGateOdd:
        case Op::MxfpRows: {
            const Shape& sc = p.src[1]->shape;
            if (in.rank != 4 || in[3] != 16 || s.dtype != DType::I8 || p.src[1]->dtype != DType::I8)
                return make_error("MXFP4 blocks {} {} are not U8 [E, rows, blocks, 16]", in.str(),
                                  dtype_name(s.dtype));
            if (!(sc == Shape{in[0], in[1], in[2]}))
                return make_error("MXFP4 scales {} do not match blocks {}", sc.str(), in.str());
            const bool gate_up = p.op != Op::MxfpRows;
            if (gate_up && in[1] % 2 != 0)
                return make_error("fused gate_up blocks {} have an odd row count", in.str());
            p.shape = Shape{in[0], gate_up ? in[1] / 2 : in[1], in[2] * 32};
            return {};
        }
    }
    return make_error("unknown op");
}

bool aligned_for(const void* ptr, DType t) {
    return reinterpret_cast<uintptr_t>(ptr) % uintptr_t(elem_bytes(t)) == 0;
}

Result<std::vector<PlannedTensor>> plan_tensors(const hf::FamilySpec& fam,
                                                const SafetensorsSet& set, const PlanParams& pp) {
    std::vector<PlannedTensor> plan;
    std::unordered_set<std::string> consumed, produced;

    auto add_rule = [&](const hf::TensorRule& r, int64_t layer) -> Result<void> {
        PlannedTensor p;
        p.name = substitute(r.gguf, layer, 0);
        p.op = r.op;
        if (r.op == Op::Stack) {
            const std::string first = substitute(r.hf, layer, 0);
            if (!set.find(first)) return {};
            if (pp.n_expert <= 0)
                return make_error("'{}': per-expert tensors but no expert count in config.json",
                                  first);
            for (int64_t e = 0; e < pp.n_expert; ++e) {
                const std::string hn = substitute(r.hf, layer, e);
                const SafetensorsTensor* t = set.find(hn);
                if (!t)
                    return make_error("missing tensor '{}' ({} experts expected)", hn, pp.n_expert);
                if (!p.src.empty() &&
                    (!(t->shape == p.src[0]->shape) || t->dtype != p.src[0]->dtype))
                    return make_error("tensor '{}': shape {} / dtype {} differs from expert 0", hn,
                                      t->shape.str(), dtype_name(t->dtype));
                p.src.push_back(t);
                consumed.insert(hn);
            }
        } else {
            const std::string hn = substitute(r.hf, layer, 0);
            const SafetensorsTensor* t = set.find(hn);
            if (!t) return {};
            p.src.push_back(t);
            consumed.insert(hn);
            if (is_mxfp4_op(r.op)) {  // the scales that go with these blocks
                const std::string sn = hn.substr(0, hn.size() - 7) + "_scales";
                const SafetensorsTensor* sc = hn.ends_with("_blocks") ? set.find(sn) : nullptr;
                if (!sc) return make_error("tensor '{}' has no '{}' beside it", hn, sn);
                p.src.push_back(sc);
                consumed.insert(sn);
            }
        }
        auto shaped = plan_shape(p, pp);
        if (!shaped.ok())
            return with_context(shaped.error(), "tensor '" + substitute(r.hf, layer, 0) + "'");
        if (!produced.insert(p.name).second)
            return make_error("two HF tensors map to '{}'", p.name);
        const DType src = p.src[0]->dtype;
        p.dtype = is_mxfp4_op(p.op)                ? DType::MXFP4
                  : forced_f32(p.name, p.shape) ? DType::F32
                                                : src;
        p.zero_copy = p.op == Op::Copy && p.dtype == src && aligned_for(p.src[0]->data, src);
        plan.push_back(std::move(p));
        return {};
    };

    auto is_layer_rule = [](const hf::TensorRule& r) {
        return r.hf.find("{i}") != std::string_view::npos;
    };
    // Global tensors first (embeddings, then output norm and head), then layer by layer.
    for (auto group : fam.rules)
        for (const auto& r : group)
            if (!is_layer_rule(r)) MOE_TRY_VOID(add_rule(r, 0));
    for (int64_t i = 0; i < pp.n_layer; ++i)
        for (auto group : fam.rules)
            for (const auto& r : group)
                if (is_layer_rule(r)) MOE_TRY_VOID(add_rule(r, i));

    // Everything in the checkpoint must be accounted for, except what the converter drops:
    // rotary caches and layers past num_hidden_layers (DeepSeek-V3's multi-token-prediction).
    std::vector<std::string> unmapped;
    for (const auto& name : set.names()) {
        if (consumed.count(name) || name.ends_with("rotary_emb.inv_freq")) continue;
        if (name.starts_with("model.layers.")) {
            const char* digits = name.c_str() + 13;
            char* end = nullptr;
            const long long layer = std::strtoll(digits, &end, 10);
            if (end != digits && *end == '.' && layer >= pp.n_layer) continue;
        }
        unmapped.push_back(name);
    }
    if (!unmapped.empty()) {
        std::string list;
        for (size_t k = 0; k < unmapped.size() && k < 5; ++k)
            list += (k ? ", '" : "'") + unmapped[k] + "'";
        if (unmapped.size() > 5) list += fmt::format(" and {} more", unmapped.size() - 5);
        return make_error("{} tensor(s) with no GGUF name for {}: {}", unmapped.size(),
                          fam.hf_class, list);
    }
    return plan;
}

Result<nlohmann::json> read_json(const std::string& path) {
    MOE_TRY(const std::string text, read_input_file(path, uint64_t(64) << 20));
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        return make_error("'{}': invalid JSON: {}", path, e.what());
    }
}

}  // namespace

Result<std::shared_ptr<ModelSource>> open_hf_folder(const std::string& dir) {
    return open_hf_folder(dir, weight_memory());
}

Result<std::shared_ptr<ModelSource>> open_hf_folder(const std::string& dir, WeightMemory mem) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path root(dir);
    const fs::path config_path = root / "config.json";
    if (!fs::is_regular_file(config_path, ec))
        return make_error("'{}': no config.json, not a Hugging Face model folder", dir);
    MOE_TRY(auto json, read_json(config_path.string()));
    if (!json.is_object()) return make_error("'{}': not a JSON object", config_path.string());

    std::string hf_class;
    auto archs = json.find("architectures");
    if (archs != json.end() && archs->is_array() && !archs->empty() && (*archs)[0].is_string())
        hf_class = (*archs)[0].get<std::string>();
    if (hf_class.empty())
        return make_error("'{}': no \"architectures\" entry; supported: {}", config_path.string(),
                          hf::supported_families());
    const hf::FamilySpec* fam = hf::find_family(hf_class);
    if (!fam)
        return make_error("'{}': unsupported architecture '{}'; supported: {}",
                          config_path.string(), hf_class, hf::supported_families());

    MOE_TRY(auto set, SafetensorsSet::open_folder(dir, mem));

    // Metadata.
    hf::Config cfg(std::move(json));
    hf::Meta meta{std::string(fam->gguf_arch)};
    meta.str("general.architecture", std::string(fam->gguf_arch));
    meta.str("general.type", "model");
    fs::path base = root.filename().empty() ? root.parent_path().filename() : root.filename();
    if (!base.empty()) meta.str("general.name", title_case(base.string()));
    hf::common_hparams(cfg, meta);
    fam->hparams(cfg, meta);

    PlanParams pp;
    pp.n_layer = cfg.first_int({"num_hidden_layers", "n_layer", "num_layers"}).value_or(0);
    pp.n_head = cfg.first_int({"num_attention_heads", "n_head", "n_heads"}).value_or(0);
    pp.n_head_kv = cfg.first_int({"num_key_value_heads", "n_kv_heads"}).value_or(pp.n_head);
    pp.n_expert =
        cfg.first_int({"num_local_experts", "num_experts", "n_routed_experts"}).value_or(0);
    pp.qk_nope = cfg.get_int("qk_nope_head_dim").value_or(0);
    pp.v_head = cfg.get_int("v_head_dim").value_or(0);
    if (!cfg.error().empty()) return make_error("'{}': {}", config_path.string(), cfg.error());
    if (!meta.error().empty()) return make_error("'{}': {}", config_path.string(), meta.error());
    if (pp.n_layer <= 0 || pp.n_layer > 100000)
        return make_error("'{}': missing or invalid num_hidden_layers", config_path.string());

    auto plan = plan_tensors(*fam, *set, pp);
    if (!plan.ok()) return with_context(plan.error(), "'" + dir + "'");

    // general.file_type like the converter's default: the type most weights were stored in.
    for (const auto& p : *plan)
        if (p.name == "token_embd.weight") {
            const int64_t ft = p.dtype == DType::F32 ? 0 : p.dtype == DType::F16 ? 1 : 32;
            meta.u32("general.file_type", ft);
        }

    auto entries = std::move(meta.entries());
    MOE_TRY_VOID(append_hf_tokenizer(dir, entries));
    return std::shared_ptr<ModelSource>(std::make_shared<HfSource>(
        dir, std::move(set), std::move(entries), std::move(plan).value()));
}

}  // namespace moe
