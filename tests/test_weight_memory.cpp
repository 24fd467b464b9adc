// Weight files mapped or loaded into huge-page memory: same bytes, same logits, clear errors.
#include <gtest/gtest.h>

#include <cstring>

#include "core/mapped_file.h"
#include "fixtures.h"
#include "formats/model_source.h"
#include "gguf/gguf.h"
#include "models/model.h"
#include "runtime/session.h"

namespace moe {
namespace {

TEST(WeightMemory, LoadedBytesEqualMappedBytes) {
    const std::string path = test::gguf_path("olmoe", "q4_k_m");
    auto m = MappedFile::open(path, WeightMemory::Map);
    auto l = MappedFile::open(path, WeightMemory::Load);
    ASSERT_TRUE(m.ok()) << m.message();
    ASSERT_TRUE(l.ok()) << l.message();
    EXPECT_FALSE((*m)->loaded());
    EXPECT_TRUE((*l)->loaded());
    ASSERT_EQ((*m)->size(), (*l)->size());
    EXPECT_EQ(std::memcmp((*m)->data(), (*l)->data(), (*m)->size()), 0);
    // Loaded data starts on a 2 MiB boundary (so huge pages can back it) and keeps GGUF's
    // 32-byte tensor alignment.
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*l)->data()) % (2u << 20), 0u);
}

TEST(WeightMemory, AutoMapsSmallFiles) {
    auto a = MappedFile::open(test::gguf_path("olmoe", "q4_k_m"), WeightMemory::Auto);
    ASSERT_TRUE(a.ok()) << a.message();
    EXPECT_FALSE((*a)->loaded());  // a few hundred KiB: below the 64 MiB threshold
}

TEST(WeightMemory, SameLogitsEitherWay) {
    const auto toks = test::load_ref("qwen3moe")["tokens"].get<std::vector<int32_t>>();
    std::vector<float> out[2];
    for (int i = 0; i < 2; ++i) {
        set_weight_memory(i == 0 ? WeightMemory::Map : WeightMemory::Load);
        auto model = load_model(test::gguf_path("qwen3moe", "q8_0"));
        ASSERT_TRUE(model.ok()) << model.message();
        SessionOptions so;
        so.n_threads = 2;
        so.n_ctx = 64;
        Session s(**model, so);
        auto r = s.eval_tokens(toks, true);
        ASSERT_TRUE(r.ok()) << r.message();
        out[i] = std::move(*r);
    }
    set_weight_memory(WeightMemory::Auto);
    EXPECT_EQ(out[0], out[1]);
}

TEST(WeightMemory, MissingFileIsAnError) {
    for (auto mode : {WeightMemory::Map, WeightMemory::Load}) {
        auto r = MappedFile::open("/nonexistent/x.gguf", mode);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.message().find("cannot open"), std::string::npos) << r.message();
    }
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// The mode is a load option (serve -m PATH,mmap|,no-mmap), independent of the process default.
TEST(WeightMemory, PerFileModeOverridesTheDefault) {
    const std::string path = test::gguf_path("olmoe", "q4_k_m");
    set_weight_memory(WeightMemory::Map);
    auto l = gguf::File::open(path, WeightMemory::Load);
    ASSERT_TRUE(l.ok()) << l.message();
    EXPECT_TRUE((*l)->loaded());
    set_weight_memory(WeightMemory::Load);
    auto m = gguf::File::open(path, WeightMemory::Map);
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_FALSE((*m)->loaded());
    auto d = gguf::File::open(path);  // the process default
    ASSERT_TRUE(d.ok()) << d.message();
    EXPECT_TRUE((*d)->loaded());
    set_weight_memory(WeightMemory::Auto);
    auto src = open_model_source(path, WeightMemory::Load);
    ASSERT_TRUE(src.ok()) << src.message();
}

}  // namespace
}  // namespace moe
