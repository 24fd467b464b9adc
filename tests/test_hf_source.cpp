// A Hugging Face folder must read exactly like the upstream converter's f32 GGUF of the same
// weights: same tensors (names, shapes, values), no extra tensors, same hyperparameters. Plus
// safetensors edge cases: sharded folders, half-precision sources and hostile files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/half.h"
#include "formats/hf_source.h"
#include "formats/model_source.h"
#include "formats/safetensors.h"
#include "hf_folder_writer.h"

namespace fs = std::filesystem;

namespace {

using moe::test::ScratchDir;
using moe::test::StTensor;
using moe::test::write_safetensors_file;

const std::string kModels = std::string(MOE_FIXTURES_DIR) + "/models/";

// ---------------------------------------------------------------------------------------------
// Helpers

void write_raw(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

std::string le64(uint64_t n) {
    std::string s;
    for (int i = 0; i < 8; ++i) s += char((n >> (8 * i)) & 0xff);
    return s;
}

std::vector<float> to_f32(const moe::TensorView& v) {
    const int64_t n = v.shape.numel();
    std::vector<float> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        if (v.dtype == moe::DType::F32) {
            std::memcpy(&out[i], static_cast<const uint8_t*>(v.data) + 4 * i, 4);
        } else {
            uint16_t h;
            std::memcpy(&h, static_cast<const uint8_t*>(v.data) + 2 * i, 2);
            out[i] = v.dtype == moe::DType::F16 ? moe::fp16_to_f32(h) : moe::bf16_to_f32(h);
        }
    }
    return out;
}

std::shared_ptr<moe::ModelSource> open_or_fail(const std::string& path) {
    auto r = moe::open_model_source(path);
    EXPECT_TRUE(r.ok()) << path << ": " << (r.ok() ? "" : r.message());
    return r.ok() ? *r : nullptr;
}

// ---------------------------------------------------------------------------------------------
// HF folder vs the upstream converter's f32 GGUF, per family

class HfVsGguf : public ::testing::TestWithParam<std::string> {};

TEST_P(HfVsGguf, SameTensorsAndHyperparameters) {
    const std::string name = GetParam();
    auto gg = open_or_fail(kModels + name + "-f32.gguf");
    auto hf = open_or_fail(kModels + name);
    ASSERT_TRUE(gg && hf);
    EXPECT_EQ(hf->format(), "safetensors");
    const std::string arch = gg->architecture();
    ASSERT_FALSE(arch.empty());
    EXPECT_EQ(hf->architecture(), arch);
    EXPECT_EQ(hf->get_string("general.name"), gg->get_string("general.name"));

    // (1) every GGUF tensor, same shape and values
    int bit_identical = 0, total = 0;
    for (const auto& tn : gg->tensor_names()) {
        SCOPED_TRACE(tn);
        auto ref = gg->tensor(tn);
        ASSERT_TRUE(ref.has_value());
        ASSERT_EQ(ref->dtype, moe::DType::F32);
        auto got = hf->tensor(tn);
        ASSERT_TRUE(got.has_value()) << "missing in HF source";
        EXPECT_EQ(got->dtype, moe::DType::F32);
        ASSERT_EQ(got->shape, ref->shape) << got->shape.str() << " vs " << ref->shape.str();
        const auto a = to_f32(*got), b = to_f32(*ref);
        float max_ref = 0, max_diff = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            max_ref = std::max(max_ref, std::fabs(b[i]));
            max_diff = std::max(max_diff, std::fabs(a[i] - b[i]));
        }
        EXPECT_LE(max_diff, 1e-6f * std::max(max_ref, 1e-30f));
        ++total;
        bit_identical += std::memcmp(got->data, ref->data, size_t(ref->nbytes())) == 0;
    }
    EXPECT_EQ(bit_identical, total) << "tensors not bit-identical";

    // (2) no extra tensors
    const auto gnames = gg->tensor_names();
    const std::set<std::string> gset(gnames.begin(), gnames.end());
    for (const auto& tn : hf->tensor_names()) EXPECT_TRUE(gset.count(tn)) << "extra tensor " << tn;
    EXPECT_EQ(hf->tensor_names().size(), gnames.size());

    // (3) every {arch}.* hyperparameter, same type and value
    for (const auto& [key, ref] : gg->metadata()) {
        if (!key.starts_with(arch + ".")) continue;
        SCOPED_TRACE(key);
        const moe::gguf::Value* got = hf->find(key);
        ASSERT_NE(got, nullptr) << "missing key";
        EXPECT_EQ(moe::gguf::value_type_name(got->type), moe::gguf::value_type_name(ref.type));
        if (ref.is_float()) {
            const double r = *ref.as_float(), g = got->as_float().value_or(NAN);
            EXPECT_LE(std::fabs(g - r), 1e-6 * std::max(std::fabs(r), 1e-30)) << g << " vs " << r;
        } else {
            EXPECT_EQ(got->to_string(), ref.to_string());
        }
    }
    // and no {arch}.* key the converter would not have written
    for (const auto& [key, v] : hf->metadata()) {
        if (key.starts_with(arch + ".")) {
            EXPECT_NE(gg->find(key), nullptr) << "extra key " << key;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Families, HfVsGguf,
                         ::testing::Values("llama", "mixtral", "qwen2moe", "qwen3moe", "olmoe",
                                           "deepseek2", "deepseek3", "gptoss"));

// ---------------------------------------------------------------------------------------------
// Folder layouts: index.json shards and several files without an index

std::vector<StTensor> read_all(const std::string& path) {
    auto f = moe::SafetensorsFile::open(path);
    EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.message());
    std::vector<StTensor> out;
    if (!f.ok()) return out;
    for (const auto& t : (*f)->tensors()) {
        StTensor e;
        e.name = t.name;
        e.dtype = t.dtype == moe::DType::F32 ? "F32" : t.dtype == moe::DType::F16 ? "F16" : "BF16";
        for (int d = 0; d < t.shape.rank; ++d) e.shape.push_back(t.shape[d]);
        e.bytes.assign(t.data, t.data + t.nbytes);
        out.push_back(std::move(e));
    }
    return out;
}

void expect_same_source(const moe::ModelSource& a, const moe::ModelSource& b) {
    auto an = a.tensor_names(), bn = b.tensor_names();
    std::sort(an.begin(), an.end());
    std::sort(bn.begin(), bn.end());
    ASSERT_EQ(an, bn);
    for (const auto& n : an) {
        auto x = a.tensor(n), y = b.tensor(n);
        ASSERT_TRUE(x && y);
        ASSERT_EQ(x->shape, y->shape) << n;
        ASSERT_EQ(x->dtype, y->dtype) << n;
        EXPECT_EQ(std::memcmp(x->data, y->data, size_t(x->nbytes())), 0) << n;
    }
    // Model metadata must agree; tokenizer keys come from tokenizer.json, which the temporary
    // sharded copies do not carry.
    auto model_keys = [](const moe::ModelSource& s) {
        size_t n = 0;
        for (const auto& [k, v] : s.metadata()) n += k.rfind("tokenizer.", 0) != 0;
        return n;
    };
    ASSERT_EQ(model_keys(a), model_keys(b));
}

TEST(HfSource, ShardedWithIndexAndWithout) {
    auto all = read_all(kModels + "mixtral/model.safetensors");
    ASSERT_GT(all.size(), 10u);
    auto single = open_or_fail(kModels + "mixtral");
    ASSERT_TRUE(single);

    for (bool with_index : {true, false}) {
        SCOPED_TRACE(with_index ? "index" : "no index");
        ScratchDir tmp(std::string("shards") + (with_index ? "1" : "0"));
        const fs::path dir = tmp.path() / "mixtral";
        fs::create_directories(dir);
        fs::copy_file(kModels + "mixtral/config.json", dir / "config.json");
        std::vector<StTensor> a(all.begin(), all.begin() + all.size() / 2);
        std::vector<StTensor> b(all.begin() + all.size() / 2, all.end());
        write_safetensors_file(dir / "model-00001-of-00002.safetensors", a);
        write_safetensors_file(dir / "model-00002-of-00002.safetensors", b);
        if (with_index) {
            nlohmann::json idx;
            idx["metadata"] = {{"total_size", 0}};
            for (const auto& e : a) idx["weight_map"][e.name] = "model-00001-of-00002.safetensors";
            for (const auto& e : b) idx["weight_map"][e.name] = "model-00002-of-00002.safetensors";
            std::ofstream(dir / "model.safetensors.index.json") << idx.dump(2);
        }
        auto sharded = open_or_fail(dir.string());
        ASSERT_TRUE(sharded);
        expect_same_source(*single, *sharded);
    }
}

TEST(HfSource, IndexPointingAtWrongShardIsAnError) {
    auto all = read_all(kModels + "llama/model.safetensors");
    ScratchDir tmp("badindex");
    fs::copy_file(kModels + "llama/config.json", tmp.path() / "config.json");
    // all[0] lives in b.safetensors, but the index claims it is in a.safetensors
    write_safetensors_file(tmp.path() / "a.safetensors", {all.begin() + 1, all.end()});
    write_safetensors_file(tmp.path() / "b.safetensors", {all[0]});
    nlohmann::json idx;
    for (const auto& e : all) idx["weight_map"][e.name] = "a.safetensors";
    idx["weight_map"]["model.norm.weight"] = "b.safetensors";
    std::ofstream(tmp.path() / "model.safetensors.index.json") << idx.dump();
    auto r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find(all[0].name), std::string::npos) << r.message();

    // weight_map entries must name files inside the folder
    idx["weight_map"][all[0].name] = "../b.safetensors";
    std::ofstream(tmp.path() / "model.safetensors.index.json") << idx.dump();
    r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("not a file in the folder"), std::string::npos) << r.message();
}

TEST(HfSource, DuplicateTensorAcrossFilesIsAnError) {
    auto all = read_all(kModels + "llama/model.safetensors");
    ScratchDir tmp("dup");
    fs::copy_file(kModels + "llama/config.json", tmp.path() / "config.json");
    write_safetensors_file(tmp.path() / "a.safetensors", all);
    write_safetensors_file(tmp.path() / "b.safetensors", {all[0]});
    auto r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("occurs in both"), std::string::npos) << r.message();
}

// A bf16 checkpoint keeps bf16 matrices (transformed in place: permuted, stacked), while norms,
// router weights and biases become f32, as the converter does.
TEST(HfSource, HalfPrecisionSourcesKeepTheirType) {
    auto all = read_all(kModels + "qwen2moe/model.safetensors");
    for (auto& e : all) {
        const size_t n = e.bytes.size() / 4;
        std::vector<uint8_t> h(n * 2);
        for (size_t i = 0; i < n; ++i) {
            float f;
            std::memcpy(&f, e.bytes.data() + 4 * i, 4);
            const uint16_t b = moe::f32_to_bf16(f);
            std::memcpy(h.data() + 2 * i, &b, 2);
        }
        e.bytes = std::move(h);
        e.dtype = "BF16";
    }
    ScratchDir tmp("bf16");
    const fs::path dir = tmp.path() / "qwen2moe";
    fs::create_directories(dir);
    fs::copy_file(kModels + "qwen2moe/config.json", dir / "config.json");
    write_safetensors_file(dir / "model.safetensors", all);
    auto hf = open_or_fail(dir.string());
    auto ref = open_or_fail(kModels + "qwen2moe");
    ASSERT_TRUE(hf && ref);
    EXPECT_EQ(hf->get_int("general.file_type"), 32);
    for (const auto& n : ref->tensor_names()) {
        SCOPED_TRACE(n);
        auto x = hf->tensor(n), y = ref->tensor(n);
        ASSERT_TRUE(x && y);
        ASSERT_EQ(x->shape, y->shape);
        const bool f32 = y->shape.rank == 1 || n.ends_with("_norm.weight") ||
                         n.find("ffn_gate_inp") != std::string::npos;
        EXPECT_EQ(x->dtype, f32 ? moe::DType::F32 : moe::DType::BF16);
        const auto a = to_f32(*x), b = to_f32(*y);
        for (size_t i = 0; i < a.size(); ++i)
            ASSERT_EQ(a[i], moe::bf16_to_f32(moe::f32_to_bf16(b[i]))) << i;
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: every case is a clear error, never a crash

TEST(Safetensors, TruncatedFile) {
    ScratchDir tmp("trunc");
    write_raw(tmp.path() / "x.safetensors", std::string("\x10\x00\x00", 3));
    auto r = moe::SafetensorsFile::open((tmp.path() / "x.safetensors").string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("too short"), std::string::npos) << r.message();

    // a real file cut in the middle of its data
    std::ifstream in(kModels + "llama/model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_raw(tmp.path() / "cut.safetensors", bytes.substr(0, bytes.size() / 2));
    auto c = moe::SafetensorsFile::open((tmp.path() / "cut.safetensors").string());
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.message().find("outside the data section"), std::string::npos) << c.message();
    // and cut inside the header
    write_raw(tmp.path() / "cut2.safetensors", bytes.substr(0, 100));
    auto c2 = moe::SafetensorsFile::open((tmp.path() / "cut2.safetensors").string());
    ASSERT_FALSE(c2.ok());
    EXPECT_NE(c2.message().find("exceeds the file size"), std::string::npos) << c2.message();
}

TEST(Safetensors, HeaderLengthLargerThanFile) {
    ScratchDir tmp("hlen");
    write_raw(tmp.path() / "x.safetensors", le64(1ull << 40) + "{}");
    auto r = moe::SafetensorsFile::open((tmp.path() / "x.safetensors").string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("exceeds the file size"), std::string::npos) << r.message();
    write_raw(tmp.path() / "y.safetensors", le64(~0ull) + "{}");
    EXPECT_FALSE(moe::SafetensorsFile::open((tmp.path() / "y.safetensors").string()).ok());
}

TEST(Safetensors, DataOffsetsOutsideFile) {
    ScratchDir tmp("offs");
    auto write_header = [&](const std::string& name, const std::string& json, size_t data_bytes) {
        write_raw(tmp.path() / name, le64(json.size()) + json + std::string(data_bytes, '\0'));
        return moe::SafetensorsFile::open((tmp.path() / name).string());
    };
    auto r = write_header("a.safetensors",
                          R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,1000016]}})", 16);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("'w'"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("outside"), std::string::npos) << r.message();
    // offsets near 2^64 must not wrap around
    r = write_header(
        "b.safetensors",
        R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[18446744073709551615,15]}})", 16);
    EXPECT_FALSE(r.ok());
    // shape and byte range disagree
    r = write_header("c.safetensors", R"({"w":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}})",
                     16);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("needs 20"), std::string::npos) << r.message();
    // huge shape: no overflow, no allocation
    r = write_header(
        "d.safetensors",
        R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}})",
        16);
    EXPECT_FALSE(r.ok());
    // malformed entries
    for (const char* bad :
         {R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})",
          R"({"w":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})",
          R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0]}})",
          R"({"w":{"shape":[4],"data_offsets":[0,16]}})", R"({"w":[1,2,3]})", R"([1,2])",
          R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})", "\xff\xfe{}"}) {
        SCOPED_TRACE(bad);
        EXPECT_FALSE(write_header("e.safetensors", bad, 16).ok());
    }
    // a good one for contrast, with __metadata__ ignored
    r = write_header("f.safetensors",
                     R"({"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[2,4],)"
                     R"("data_offsets":[0,16]}})",
                     16);
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ((*r)->tensors().size(), 1u);
    EXPECT_EQ((*r)->find("w")->shape, (moe::Shape{2, 4}));
}

TEST(Safetensors, UnsupportedDtype) {
    ScratchDir tmp("dtype");
    const std::string json = R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})";
    write_raw(tmp.path() / "x.safetensors", le64(json.size()) + json + std::string(16, '\0'));
    auto r = moe::SafetensorsFile::open((tmp.path() / "x.safetensors").string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("I64"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("not supported"), std::string::npos) << r.message();
}

TEST(HfSource, FolderWithoutConfig) {
    ScratchDir tmp("noconfig");
    write_safetensors_file(tmp.path() / "model.safetensors", {});
    auto r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("config.json"), std::string::npos) << r.message();
}

TEST(HfSource, FolderWithoutWeights) {
    ScratchDir tmp("noweights");
    fs::copy_file(kModels + "llama/config.json", tmp.path() / "config.json");
    auto r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("safetensors"), std::string::npos) << r.message();
}

TEST(HfSource, UnknownArchitecture) {
    ScratchDir tmp("unknown");
    write_raw(tmp.path() / "config.json", R"({"architectures": ["FooBarForCausalLM"]})");
    write_safetensors_file(tmp.path() / "model.safetensors", {});
    auto r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("FooBarForCausalLM"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("MixtralForCausalLM"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("GptOssForCausalLM"), std::string::npos) << r.message();
}

TEST(HfSource, BadConfig) {
    ScratchDir tmp("badconfig");
    write_safetensors_file(tmp.path() / "model.safetensors", {});
    write_raw(tmp.path() / "config.json", "{ not json");
    auto r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("invalid JSON"), std::string::npos) << r.message();
    write_raw(tmp.path() / "config.json",
              R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": "two"})");
    r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("num_hidden_layers"), std::string::npos) << r.message();
}

TEST(HfSource, UnmappedTensorIsAnError) {
    auto all = read_all(kModels + "llama/model.safetensors");
    all.push_back(StTensor{"model.layers.0.mystery.weight", "F32", {2}, std::vector<uint8_t>(8)});
    ScratchDir tmp("unmapped");
    fs::copy_file(kModels + "llama/config.json", tmp.path() / "config.json");
    write_safetensors_file(tmp.path() / "model.safetensors", all);
    auto r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("model.layers.0.mystery.weight"), std::string::npos) << r.message();
}

TEST(HfSource, MissingExpertIsAnError) {
    auto all = read_all(kModels + "mixtral/model.safetensors");
    std::erase_if(all, [](const StTensor& e) {
        return e.name == "model.layers.1.block_sparse_moe.experts.5.w2.weight";
    });
    ScratchDir tmp("noexpert");
    fs::copy_file(kModels + "mixtral/config.json", tmp.path() / "config.json");
    write_safetensors_file(tmp.path() / "model.safetensors", all);
    auto r = moe::open_model_source(tmp.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("experts.5.w2"), std::string::npos) << r.message();
}

}  // namespace
