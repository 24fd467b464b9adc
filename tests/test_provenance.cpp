// `inspect` shows licence and provenance from a file's general.* keys, and says when they are
// missing. The files are the llama fixture rewritten with the keys real GGUFs carry.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "analysis/provenance.h"
#include "fixtures.h"
#include "formats/model_source.h"
#include "gguf_rewrite.h"

namespace moe {
namespace {

struct CliRun {
    int code;
    std::string out;
};

CliRun run(const std::string& args) {
    const std::string cmd = std::string(MOE_BINARY) + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf{};
    while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
    const int st = pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, out};
}

gguf::Value u32(uint64_t v) {
    return gguf::Value{gguf::ValueType::U32, v};
}

// The llama fixture with the provenance keys of a typical community quantization.
std::string write_file_with_provenance() {
    auto src = open_model_source(test::gguf_path("llama", "f32"));
    EXPECT_TRUE(src.ok());
    const std::string out = test::temp_path("provenance.gguf");
    using test::str_value;
    gguf::Array langs{gguf::ValueType::STRING, {str_value("en"), str_value("de")}};
    auto r = test::rewrite_gguf(
        **src, out,
        {.kv = {{"general.license", str_value("llama3.1")},
                {"general.license.link",
                 str_value("https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/LICENSE")},
                {"general.author", str_value("Meta")},
                {"general.quantized_by", str_value("Unsloth")},
                {"general.size_label", str_value("8B")},
                {"general.base_model.count", u32(1)},
                {"general.base_model.0.name", str_value("Llama 3.1 8B")},
                {"general.base_model.0.organization", str_value("Meta Llama")},
                {"general.base_model.0.repo_url",
                 str_value("https://huggingface.co/meta-llama/Llama-3.1-8B")},
                {"general.languages", gguf::Value{gguf::ValueType::ARRAY, langs}},
                {"tokenizer.chat_template", str_value("{{ messages[0]['content'] }}")},
                {"tokenizer.chat_template.tool_use", str_value("{{ tools }}")}}});
    EXPECT_TRUE(r.ok()) << r.message();
    return out;
}

TEST(Provenance, InspectShowsLicenceAndOrigin) {
    const std::string path = write_file_with_provenance();
    const CliRun text = run("inspect " + path);
    const CliRun json = run("inspect --json " + path);
    std::filesystem::remove(path);
    ASSERT_EQ(text.code, 0) << text.out;
    EXPECT_NE(text.out.find("licence        llama3.1  "
                            "https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/LICENSE"),
              std::string::npos)
        << text.out;
    EXPECT_NE(text.out.find("base model     Llama 3.1 8B by Meta Llama  "
                            "https://huggingface.co/meta-llama/Llama-3.1-8B"),
              std::string::npos)
        << text.out;
    EXPECT_NE(text.out.find("quantized by   Unsloth"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("size label     8B"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("author         Meta"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("chat template  yes, named: tool_use"), std::string::npos) << text.out;
    ASSERT_EQ(json.code, 0) << json.out;
    const auto j = nlohmann::json::parse(json.out);
    const auto& p = j.at("provenance");
    EXPECT_EQ(p.at("license"), "llama3.1");
    EXPECT_EQ(p.at("license_stated"), true);
    EXPECT_EQ(p.at("quantized_by"), "Unsloth");
    ASSERT_EQ(p.at("base_models").size(), 1u);
    EXPECT_EQ(p.at("base_models")[0].at("organization"), "Meta Llama");
}

TEST(Provenance, InspectSaysWhenMissing) {
    const CliRun text = run("inspect " + test::gguf_path("llama", "f32"));
    ASSERT_EQ(text.code, 0) << text.out;
    EXPECT_NE(text.out.find("licence        not stated in the file"), std::string::npos)
        << text.out;
    EXPECT_NE(text.out.find("base model     not stated"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("quantized by   not stated"), std::string::npos) << text.out;
    const CliRun json = run("inspect --json " + test::gguf_path("llama", "f32"));
    const auto j = nlohmann::json::parse(json.out);
    EXPECT_EQ(j.at("provenance").at("license_stated"), false);
    EXPECT_TRUE(j.at("provenance").at("license").is_null());
}

// A hostile base-model count neither allocates nor loops for long.
TEST(Provenance, HugeBaseModelCountIsBounded) {
    auto src = open_model_source(test::gguf_path("llama", "f32"));
    ASSERT_TRUE(src.ok());
    const std::string out = test::temp_path("provenance_count.gguf");
    ASSERT_TRUE(
        test::rewrite_gguf(**src, out, {.kv = {{"general.base_model.count", u32(4000000000u)}}})
            .ok());
    auto file = open_model_source(out);
    ASSERT_TRUE(file.ok());
    const Provenance p = read_provenance(**file);
    std::filesystem::remove(out);
    EXPECT_TRUE(p.base_models.empty());
}

}  // namespace
}  // namespace moe
