// synth: the GGUF writer, the upstream quantizer's per-tensor type mix (checked against files the
// upstream tool wrote), and small synthesized files that load and run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "fixtures.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "models/model.h"
#include "models/synth.h"
#include "runtime/session.h"

namespace moe {
namespace {

std::string tmp(const std::string& n) {
    return test::temp_path("synth_" + n);
}

uint64_t align32(uint64_t x) { return (x + 31) / 32 * 32; }

// A preset made from a quantized file's header (tokenizer keys dropped).
Preset preset_from_file(const gguf::File& f) {
    Preset p;
    p.name = "fixture";
    p.arch = f.get_string("general.architecture").value_or("");
    for (const auto& [k, v] : f.metadata())
        if (k.rfind("tokenizer.", 0) != 0 && k != "general.quantization_version")
            p.metadata.emplace_back(k, v);
    if (const gguf::Array* t = f.get_array("tokenizer.ggml.tokens")) p.n_vocab = int64_t(t->items.size());
    p.tied_embeddings = f.find_tensor("output.weight") == nullptr;
    return p;
}

// The real presets shrunk to 256-wide rows (every block format applies), 8 experts, 2 layers.
Preset mini(const std::string& name) {
    const Preset* base = find_preset(name);
    EXPECT_NE(base, nullptr) << name;
    Preset p = *base;
    const bool mla = p.arch == "deepseek2";
    std::map<std::string, uint64_t> set = {
        {"embedding_length", 256}, {"feed_forward_length", 512}, {"expert_feed_forward_length", 256},
        {"expert_shared_feed_forward_length", 256}, {"expert_count", 8}, {"expert_used_count", 2},
        {"attention.head_count", 4}, {"vocab_size", 1024}, {"context_length", 512},
    };
    if (mla) {
        set.insert({{"attention.kv_lora_rank", 256}, {"attention.q_lora_rank", 256},
                    {"rope.dimension_count", 32}, {"attention.key_length_mla", 96},
                    {"attention.value_length_mla", 64}, {"attention.key_length", 288},
                    {"attention.value_length", 256}, {"attention.head_count_kv", 1}});
    } else {
        set.insert({{"attention.key_length", 64}, {"attention.value_length", 64}, {"rope.dimension_count", 64}});
    }
    auto orig = [&](const std::string& key) {
        for (const auto& [k, v] : base->metadata)
            if (k == p.arch + "." + key) return v.as_int().value_or(0);
        return int64_t(0);
    };
    const bool mha = orig("attention.head_count") == orig("attention.head_count_kv");
    for (auto& [k, v] : p.metadata) {
        if (k.rfind(p.arch + ".", 0) != 0) continue;
        const std::string key = k.substr(p.arch.size() + 1);
        if (auto it = set.find(key); it != set.end()) v = meta_u32(it->second);
        if (key == "attention.head_count_kv" && !mla) v = meta_u32(mha ? 4 : 2);
        if (key == "expert_group_count" && v.as_int().value_or(1) > 1) v = meta_u32(4);
        if (key == "expert_group_used_count" && v.as_int().value_or(1) > 1) v = meta_u32(2);
    }
    p.n_vocab = 1024;
    auto r = preset_with_layers(p, 2);
    EXPECT_TRUE(r.ok()) << r.message();
    return *r;
}

TEST(GgufWriter, RoundTripsMetadataAndTensors) {
    const std::string path = tmp("rt.gguf");
    gguf::Writer w;
    w.add_kv("general.architecture", meta_str("test"));
    w.add_kv("a.u32", meta_u32(7));
    w.add_kv("a.f32", meta_f32(1.5));
    w.add_kv("a.bool", meta_bool(true));
    gguf::Array arr{gguf::ValueType::I32, {meta_i32(-1), meta_i32(2)}};
    w.add_kv("a.arr", gguf::Value{gguf::ValueType::ARRAY, arr});
    ASSERT_TRUE(w.add_tensor("x", DType::F32, {3, 5}).ok());
    ASSERT_TRUE(w.add_tensor("y", DType::Q8_0, {2, 64}).ok());
    EXPECT_FALSE(w.add_tensor("bad", DType::Q4_K, {2, 128}).ok());  // 128 % 256
    ASSERT_TRUE(w.open(path).ok());
    std::vector<float> x(15);
    for (int i = 0; i < 15; ++i) x[size_t(i)] = float(i);
    ASSERT_TRUE(w.append(x.data(), 20).ok());  // in two pieces
    ASSERT_TRUE(w.append(x.data() + 5, 40).ok());
    std::vector<uint8_t> y(2 * 68, 0);
    ASSERT_TRUE(w.append(y.data(), y.size()).ok());
    ASSERT_TRUE(w.close().ok());

    auto f = gguf::File::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    EXPECT_EQ((*f)->get_int("a.u32").value_or(0), 7);
    EXPECT_EQ((*f)->get_float("a.f32").value_or(0), 1.5);
    EXPECT_EQ((*f)->get_bool("a.bool").value_or(false), true);
    ASSERT_NE((*f)->get_array("a.arr"), nullptr);
    EXPECT_EQ((*f)->get_array("a.arr")->items[0].as_int().value_or(0), -1);
    const auto* tx = (*f)->find_tensor("x");
    ASSERT_NE(tx, nullptr);
    EXPECT_EQ(tx->shape, (Shape{3, 5}));
    const auto v = (*f)->view(*tx);
    EXPECT_EQ(static_cast<const float*>(v.data)[14], 14.0f);
    EXPECT_EQ((*f)->file_size(), w.file_bytes());
    EXPECT_EQ((*f)->data_offset(), w.header_bytes());
    std::filesystem::remove(path);
}

TEST(GgufWriter, ReportsUnwritablePathAndShortData) {
    gguf::Writer w;
    ASSERT_TRUE(w.add_tensor("x", DType::F32, {4}).ok());
    EXPECT_FALSE(w.open("/nonexistent-dir/x.gguf").ok());
    gguf::Writer w2;
    ASSERT_TRUE(w2.add_tensor("x", DType::F32, {4}).ok());
    const std::string path = tmp("short.gguf");
    ASSERT_TRUE(w2.open(path).ok());
    float v = 0;
    ASSERT_TRUE(w2.append(&v, 4).ok());
    EXPECT_FALSE(w2.close().ok());
    std::filesystem::remove(path);
}

// The per-tensor type mix equals what the upstream quantizer chose in the fixture files.
TEST(SynthMix, MatchesUpstreamQuantizerOnFixtures) {
    const std::vector<std::pair<std::string, std::string>> files = {
        {"mixtral-wide", "q8_0"},   {"mixtral-wide", "q6_k"},   {"mixtral-wide", "q5_k_m"},
        {"mixtral-wide", "q4_k_m"}, {"mixtral-wide", "q3_k_m"}, {"mixtral-wide", "q2_k"},
        {"mixtral-wide", "q4_0"},   {"mixtral-wide", "q4_1"},   {"mixtral-wide", "q5_0"},
        {"mixtral-wide", "q5_1"},   {"mixtral-wide", "iq4_nl"}, {"mixtral-wide", "iq4_xs"},
        {"qwen2moe-wide", "q4_k_m"}, {"qwen3moe-wide", "q4_k_m"}, {"deepseek3-wide", "q4_k_m"},
        {"gptoss-wide", "mxfp4_moe"}, {"gptoss-wide", "q8_0"},    {"olmoe", "q4_k_m"},
        {"qwen3moe", "q4_k_m"},      {"llama", "q4_k_m"},       {"llama", "q4_0"},
    };
    for (const auto& [model, type] : files) {
        auto f = gguf::File::open(test::gguf_path(model, type));
        ASSERT_TRUE(f.ok()) << f.message();
        const Preset p = preset_from_file(**f);
        const SynthFileType* ft = find_synth_file_type(type);
        ASSERT_NE(ft, nullptr) << type;
        EXPECT_EQ((*f)->get_int("general.file_type").value_or(-1), int64_t(ft->ftype_id)) << type;
        auto ts = synth_tensors(p, *ft);
        ASSERT_TRUE(ts.ok()) << model << " " << type << ": " << ts.message();
        EXPECT_EQ(ts->size(), (*f)->tensors().size()) << model << " " << type;
        for (const auto& t : *ts) {
            const auto* info = (*f)->find_tensor(t.name);
            ASSERT_NE(info, nullptr) << model << " " << type << ": " << t.name;
            EXPECT_EQ(dtype_name(t.dtype), dtype_name(info->dtype)) << model << " " << type << ": " << t.name;
        }
    }
}

TEST(Synth, LayersKeepLeadingDenseBlocks) {
    auto p = preset_with_layers(*find_preset("deepseek-v3"), 2);
    ASSERT_TRUE(p.ok());
    auto m = plan_model(preset_source(*p));
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_EQ((*m)->config.n_layer, 2);
    EXPECT_EQ((*m)->config.is_moe[0], 0);
    EXPECT_EQ((*m)->config.is_moe[1], 1);
    EXPECT_FALSE(preset_with_layers(*find_preset("olmoe-1b-7b"), 0).ok());
    EXPECT_FALSE(preset_with_layers(*find_preset("olmoe-1b-7b"), 17).ok());
}

TEST(Synth, FullSizePlansWithoutWriting) {
    // The full DeepSeek-V3 at Q4_K_M: only the tensor list and types (nothing is written).
    auto ts = synth_tensors(*find_preset("deepseek-v3"), *find_synth_file_type("q4_k_m"));
    ASSERT_TRUE(ts.ok()) << ts.message();
    double bytes = 0;
    for (const auto& t : *ts) bytes += double(t.shape.rows()) * double(dtype_row_bytes(t.dtype, t.shape.last()));
    EXPECT_GT(bytes, 350e9);
    EXPECT_LT(bytes, 450e9);
}

// Small files of several families and types: header + tensors account for every byte, the file
// loads, and a few tokens give finite logits.
TEST(Synth, SmallFilesLoadAndRun) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"olmoe-1b-7b", "q4_k_m"}, {"olmoe-1b-7b", "q8_0"},     {"mixtral-8x7b", "q4_0"},
        {"qwen1.5-moe-a2.7b", "q5_k_m"}, {"qwen3-30b-a3b", "iq4_xs"}, {"deepseek-v2-lite", "q6_k"},
        {"deepseek-v3", "q3_k_m"}, {"gpt-oss-20b", "mxfp4"},    {"llama-3-8b", "bf16"},
        {"qwen2-57b-a14b", "q2_k"}, {"deepseek-v2", "f16"},     {"olmoe-1b-7b", "q4_1"},
        {"olmoe-1b-7b", "q5_0"},   {"olmoe-1b-7b", "q5_1"},     {"olmoe-1b-7b", "iq4_nl"},
        {"olmoe-1b-7b", "f32"},
    };
    for (const auto& [name, type] : cases) {
        SCOPED_TRACE(name + " " + type);
        const Preset p = mini(name);
        const SynthFileType* ft = find_synth_file_type(type);
        ASSERT_NE(ft, nullptr);
        const std::string path = tmp(name + "-" + type + ".gguf");
        SynthOptions opt;
        opt.n_threads = 2;
        auto r = synth_write(p, *ft, path, opt);
        ASSERT_TRUE(r.ok()) << r.message();
        auto f = gguf::File::open(path);
        ASSERT_TRUE(f.ok()) << f.message();
        uint64_t sum = 0;
        for (const auto& t : (*f)->tensors()) sum += align32(t.nbytes);
        EXPECT_EQ((*f)->file_size(), (*f)->data_offset() + sum);
        EXPECT_EQ((*f)->file_size(), r->file_bytes);
        EXPECT_EQ((*f)->alignment(), 32u);
        EXPECT_EQ((*f)->get_int("general.file_type").value_or(-1), int64_t(ft->ftype_id));
        EXPECT_EQ((*f)->get_int("general.quantization_version").value_or(0), 2);
        auto m = load_model(path);
        ASSERT_TRUE(m.ok()) << m.message();
        SessionOptions so;
        so.n_threads = 2;
        so.n_ctx = 32;
        Session s(**m, so);
        const std::vector<int32_t> toks = {1, 300, 17, 900, 5};
        auto lg = s.eval_tokens(toks, true);
        ASSERT_TRUE(lg.ok()) << lg.message();
        ASSERT_EQ(lg->size(), toks.size() * 1024u);
        double ss = 0;
        for (float v : *lg) {
            ASSERT_TRUE(std::isfinite(v));
            ss += double(v) * v;
        }
        EXPECT_GT(ss, 0.0);
        std::filesystem::remove(path);
    }
}

TEST(Synth, SameSeedSameFile) {
    const Preset p = mini("olmoe-1b-7b");
    const SynthFileType* ft = find_synth_file_type("q4_k_m");
    SynthOptions a, b;
    a.n_threads = 1, b.n_threads = 2, a.seed = b.seed = 7;
    ASSERT_TRUE(synth_write(p, *ft, tmp("s1.gguf"), a).ok());
    ASSERT_TRUE(synth_write(p, *ft, tmp("s2.gguf"), b).ok());
    auto f1 = gguf::File::open(tmp("s1.gguf")), f2 = gguf::File::open(tmp("s2.gguf"));
    ASSERT_TRUE(f1.ok() && f2.ok());
    const auto* t1 = (*f1)->find_tensor("blk.1.ffn_up_exps.weight");
    const auto* t2 = (*f2)->find_tensor("blk.1.ffn_up_exps.weight");
    ASSERT_TRUE(t1 && t2);
    EXPECT_EQ(std::memcmp((*f1)->view(*t1).data, (*f2)->view(*t2).data, t1->nbytes), 0);
    std::filesystem::remove(tmp("s1.gguf"));
    std::filesystem::remove(tmp("s2.gguf"));
}

}  // namespace
}  // namespace moe
