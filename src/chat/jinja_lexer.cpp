#include "chat/jinja_lexer.h"

#include <fmt/format.h>

#include <cstring>

#include "chat/jinja_value.h"
#include "core/utf8.h"

namespace moe::jinja {

std::string describe_pos(const std::string& src, size_t pos) {
    if (pos == std::string::npos || pos > src.size()) return "end of template";
    size_t line = 1, col = 1;
    for (size_t k = 0; k < pos; ++k) {
        if (src[k] == '\n') {
            ++line;
            col = 1;
        } else {
            ++col;
        }
    }
    return fmt::format("line {}, column {}", line, col);
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
public:
    explicit Lexer(const std::string& s) : src_(s) {}

    std::vector<Token> run() {
        size_t pos = 0;
        bool line_starting = true;
        while (pos < src_.size()) {
            const size_t tag = find_tag(pos);
            std::string text = src_.substr(pos, (tag == std::string::npos ? src_.size() : tag) - pos);
            if (tag == std::string::npos) {
                emit_text(text, pos);
                break;
            }
            const char kind = src_[tag + 1];  // '{', '%' or '#'
            const char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
            if (sign == '-') {
                while (!text.empty() && is_space(text.back())) text.pop_back();
            } else if (sign != '+' && kind != '{') {
                // lstrip_blocks: drop spaces/tabs between the line start and a block/comment tag.
                const size_t nl = text.rfind('\n');
                const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
                if (l_pos > 0 || line_starting) {
                    bool ws = true;
                    for (size_t k = l_pos; k < text.size(); ++k)
                        if (text[k] != ' ' && text[k] != '\t') ws = false;
                    if (ws) text.resize(l_pos);
                }
            }
            emit_text(text, pos);
            size_t p = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
            if (kind == '#') {
                size_t end = src_.find("#}", p);
                if (end == std::string::npos) throw JinjaError("unterminated comment '{#'", tag);
                const bool minus = end > p && src_[end - 1] == '-';
                p = end + 2;
                p = after_close(p, minus, src_[end - 1] == '+', line_starting);
                pos = p;
                continue;
            }
            if (kind == '%' && is_raw(p)) {
                pos = lex_raw(tag, p, line_starting);
                continue;
            }
            toks_.push_back({kind == '{' ? Token::Type::ExprOpen : Token::Type::StmtOpen,
                             kind == '{' ? "{{" : "{%", tag});
            pos = lex_tag(p, kind, tag, line_starting);
        }
        toks_.push_back({Token::Type::End, "", src_.size()});
        return std::move(toks_);
    }

private:
    const std::string& src_;
    std::vector<Token> toks_;

    size_t find_tag(size_t from) const {
        for (size_t k = src_.find('{', from); k != std::string::npos; k = src_.find('{', k + 1)) {
            if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#'))
                return k;
        }
        return std::string::npos;
    }

    void emit_text(const std::string& text, size_t pos) {
        if (!text.empty()) toks_.push_back({Token::Type::Text, text, pos});
    }

    // After a tag's closing delimiter: `-` strips all following whitespace; otherwise (block
    // and comment tags, trim_blocks) one newline is dropped unless `+` was given.
    size_t after_close(size_t p, bool minus, bool plus, bool& line_starting, bool block = true) {
        line_starting = false;
        if (minus) {
            while (p < src_.size() && is_space(src_[p])) {
                line_starting = src_[p] == '\n';
                ++p;
            }
        } else if (block && !plus) {
            if (p < src_.size() && src_[p] == '\n') {
                ++p;
                line_starting = true;
            } else if (p + 1 < src_.size() && src_[p] == '\r' && src_[p + 1] == '\n') {
                p += 2;
                line_starting = true;
            }
        }
        return p;
    }

    bool is_raw(size_t p) const {
        while (p < src_.size() && is_space(src_[p])) ++p;
        if (src_.compare(p, 3, "raw") != 0) return false;
        p += 3;
        while (p < src_.size() && is_space(src_[p])) ++p;
        if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
        return src_.compare(p, 2, "%}") == 0;
    }

    size_t lex_raw(size_t tag, size_t p, bool& line_starting) {
        size_t close = src_.find("%}", p);
        const bool minus = src_[close - 1] == '-';
        size_t body = after_close(close + 2, minus, src_[close - 1] == '+', line_starting);
        // Find {% endraw %} (with optional whitespace control).
        for (size_t k = src_.find("{%", body); k != std::string::npos; k = src_.find("{%", k + 2)) {
            size_t q = k + 2;
            const bool lminus = q < src_.size() && src_[q] == '-';
            if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
            while (q < src_.size() && is_space(src_[q])) ++q;
            if (src_.compare(q, 6, "endraw") != 0) continue;
            q += 6;
            while (q < src_.size() && is_space(src_[q])) ++q;
            const bool rminus = q < src_.size() && src_[q] == '-';
            const bool rplus = q < src_.size() && src_[q] == '+';
            if (rminus || rplus) ++q;
            if (src_.compare(q, 2, "%}") != 0) continue;
            std::string text = src_.substr(body, k - body);
            if (lminus)
                while (!text.empty() && is_space(text.back())) text.pop_back();
            emit_text(text, body);
            return after_close(q + 2, rminus, rplus, line_starting);
        }
        throw JinjaError("unterminated '{% raw %}' block (missing '{% endraw %}')", tag);
    }

    size_t lex_tag(size_t p, char kind, size_t tag, bool& line_starting) {
        int depth = 0;  // {} nesting inside the tag
        const char close = kind == '{' ? '}' : '%';
        while (true) {
            while (p < src_.size() && is_space(src_[p])) ++p;
            if (p >= src_.size())
                throw JinjaError(kind == '{' ? "unterminated '{{' (missing '}}')"
                                             : "unterminated '{%' (missing '%}')",
                                 tag);
            const char c = src_[p];
            // Closing delimiter, optionally with whitespace control.
            if ((c == '-' || c == '+') && p + 2 < src_.size() + 0 && src_[p + 1] == close &&
                src_[p + 2] == '}' && depth == 0) {
                emit_close(kind, p);
                return after_close(p + 3, c == '-', c == '+', line_starting, kind == '%');
            }
            if (c == close && p + 1 < src_.size() && src_[p + 1] == '}' && depth == 0) {
                emit_close(kind, p);
                return after_close(p + 2, false, false, line_starting, kind == '%');
            }
            if (c == '\'' || c == '"') {
                p = lex_string(p);
            } else if (is_digit(c)) {
                p = lex_number(p);
            } else if (is_name_start(c)) {
                size_t e = p;
                while (e < src_.size() && (is_name_start(src_[e]) || is_digit(src_[e]))) ++e;
                toks_.push_back({Token::Type::Name, src_.substr(p, e - p), p});
                p = e;
            } else {
                static const char* two[] = {"**", "//", "==", "!=", "<=", ">="};
                bool done = false;
                for (const char* op : two) {
                    if (src_.compare(p, 2, op) == 0) {
                        toks_.push_back({Token::Type::Op, op, p});
                        p += 2;
                        done = true;
                        break;
                    }
                }
                if (done) continue;
                if (!std::strchr("+-*/%~|.,:()[]{}=<>", c))
                    throw JinjaError(fmt::format("unexpected character '{}' in tag", c), p);
                if (c == '{') ++depth;
                if (c == '}') {
                    if (depth == 0) throw JinjaError("unexpected '}' in tag", p);
                    --depth;
                }
                toks_.push_back({Token::Type::Op, std::string(1, c), p});
                ++p;
            }
        }
    }

    void emit_close(char kind, size_t p) {
        toks_.push_back({kind == '{' ? Token::Type::ExprClose : Token::Type::StmtClose,
                         kind == '{' ? "}}" : "%}", p});
    }

    size_t lex_string(size_t p) {
        const char q = src_[p];
        const size_t start = p++;
        std::string out;
        while (true) {
            if (p >= src_.size()) throw JinjaError("unterminated string literal", start);
            const char c = src_[p];
            if (c == q) break;
            if (c == '\\' && p + 1 < src_.size()) {
                const char e = src_[p + 1];
                p += 2;
                switch (e) {
                    case 'n': out += '\n'; break;
                    case 't': out += '\t'; break;
                    case 'r': out += '\r'; break;
                    case 'b': out += '\b'; break;
                    case 'f': out += '\f'; break;
                    case '0': out += '\0'; break;
                    case '\\': out += '\\'; break;
                    case '\'': out += '\''; break;
                    case '"': out += '"'; break;
                    case '\n': break;
                    case 'x':
                    case 'u':
                    case 'U': {
                        const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                        if (p + n > src_.size()) throw JinjaError("bad escape in string", p);
                        uint32_t cp = 0;
                        for (size_t k = 0; k < n; ++k) {
                            const char h = src_[p + k];
                            cp <<= 4;
                            if (is_digit(h)) cp |= uint32_t(h - '0');
                            else if (h >= 'a' && h <= 'f') cp |= uint32_t(h - 'a' + 10);
                            else if (h >= 'A' && h <= 'F') cp |= uint32_t(h - 'A' + 10);
                            else throw JinjaError("bad escape in string", p);
                        }
                        if (cp > 0x10FFFF) throw JinjaError("bad escape in string", p);
                        utf8::append(out, cp);
                        p += n;
                        break;
                    }
                    default:
                        out += '\\';
                        out += e;
                }
                continue;
            }
            out += c;
            ++p;
        }
        toks_.push_back({Token::Type::String, std::move(out), start});
        return p + 1;
    }

    size_t lex_number(size_t p) {
        size_t e = p;
        while (e < src_.size() && (is_digit(src_[e]) || src_[e] == '_')) ++e;
        bool is_float = false;
        if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
            is_float = true;
            ++e;
            while (e < src_.size() && is_digit(src_[e])) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
            size_t k = e + 1;
            if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
            if (k < src_.size() && is_digit(src_[k])) {
                is_float = true;
                e = k;
                while (e < src_.size() && is_digit(src_[e])) ++e;
            }
        }
        std::string text;
        for (size_t k = p; k < e; ++k)
            if (src_[k] != '_') text += src_[k];
        toks_.push_back({is_float ? Token::Type::Float : Token::Type::Int, text, p});
        return e;
    }
};

}  // namespace

std::vector<Token> lex(const std::string& src) { return Lexer(src).run(); }

}  // namespace moe::jinja
