// `moeinfer tokenize -m MODEL -f FILE [--bos] [--special]`: prints the token ids of a text file
// as space-separated integers on one line.
#include <fmt/core.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "formats/model_source.h"
#include "tokenizer/tokenizer.h"

namespace moe::cli {

namespace {

struct TokenizeOptions {
    std::string model;
    std::string file;
    bool bos = false;
    bool special = false;
};

int run_tokenize(const TokenizeOptions& opt) {
    std::ifstream in(opt.file, std::ios::binary);
    if (!in) {
        fmt::print(stderr, "error: cannot open '{}'\n", opt.file);
        return 1;
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) {
        fmt::print(stderr, "error: cannot read '{}'\n", opt.file);
        return 1;
    }
    auto src = open_model_source(opt.model);
    if (!src) {
        fmt::print(stderr, "error: {}\n", src.message());
        return 1;
    }
    auto tok = Tokenizer::from_source(**src);
    if (!tok) {
        fmt::print(stderr, "error: {}: {}\n", opt.model, tok.message());
        return 1;
    }
    const std::vector<int32_t> ids = (*tok)->encode(text, opt.bos, opt.special);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
        if (i) line += ' ';
        line += std::to_string(ids[i]);
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

void register_tokenize_command(CLI::App& app, int& exit_code) {
    auto opt = std::make_shared<TokenizeOptions>();
    auto* cmd = app.add_subcommand("tokenize", "print the token ids of a text file");
    cmd->add_option("-m,--model", opt->model, "model (GGUF file or Hugging Face folder)")
        ->required();
    cmd->add_option("-f,--file", opt->file, "text file to tokenize (read as raw bytes)")
        ->required();
    cmd->add_flag("--bos", opt->bos, "prepend BOS when the model's tokenizer asks for it");
    cmd->add_flag("--special", opt->special, "recognise special-token texts such as <|im_end|>");
    cmd->callback([opt, &exit_code] { exit_code = run_tokenize(*opt); });
}

}  // namespace moe::cli
