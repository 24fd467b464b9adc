// `moeinfer tokenize -m MODEL -f FILE [--bos] [--special]`: prints the token ids of a text file
// as space-separated integers on one line.
#include <fmt/core.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
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

// Reads a whole file as raw bytes; false (with errno set) when it cannot be opened or read.
bool read_file(const std::string& path, std::string& out) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    char buf[1 << 16];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) out.append(buf, n);
    const bool ok = !std::ferror(f);
    std::fclose(f);
    return ok;
}

int run_tokenize(const TokenizeOptions& opt) {
    std::string text;
    if (!read_file(opt.file, text)) {
        fmt::print(stderr, "error: cannot read '{}': {}\n", opt.file, std::strerror(errno));
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
