// `moeinfer tokenize -m MODEL -f FILE [--bos] [--special]`: prints the token ids of a text file
// as space-separated integers on one line.
#include <fmt/core.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/input_file.h"
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
    // A regular file of at most 64 MiB: /dev/zero or a FIFO would never end.
    auto text_r = read_input_file(opt.file, uint64_t(64) << 20);
    if (!text_r) {
        fmt::print(stderr, "error: {}\n", text_r.message());
        return 1;
    }
    const std::string& text = *text_r;
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
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0) {
        fmt::print(stderr, "error: cannot write the token ids: {}\n", std::strerror(errno));
        return 1;
    }
    return 0;
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
