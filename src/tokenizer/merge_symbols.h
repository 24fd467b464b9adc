// The merge loop SentencePiece (highest score first) and byte-level BPE (lowest merge rank first)
// share: the text is split into one symbol per UTF-8 character, adjacent pairs that may merge are
// queued by priority, and the best pair is merged until none is left. A queued pair one of whose
// sides has merged since is stale and skipped.
#pragma once

#include <cstddef>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

#include "core/utf8.h"

namespace moe::tok {

// A run of the text [start, start + len), linked to its neighbours (-1: none).
struct Symbol {
    size_t start = 0;
    size_t len = 0;  // 0 once merged into its left neighbour
    int prev = -1;
    int next = -1;
};

// One symbol per character of text (utf8::char_len: a stray byte is a character of its own).
inline std::vector<Symbol> char_symbols(std::string_view text) {
    std::vector<Symbol> sym;
    for (size_t pos = 0; pos < text.size();) {
        const size_t len = utf8::char_len(text, pos);
        const int idx = static_cast<int>(sym.size());
        sym.push_back({pos, len, idx - 1, pos + len == text.size() ? -1 : idx + 1});
        pos += len;
    }
    return sym;
}

// Merges adjacent symbols of text while some pair may merge. priority(left, right) gives the
// pair's priority (higher merges first; on ties the leftmost pair) or nullopt when it may not.
// left and right are adjacent views into text: right starts where left ends.
template <class Priority>
void merge_symbols(std::string_view text, std::vector<Symbol>& sym, Priority&& priority) {
    struct Bigram {
        int left = 0, right = 0;
        double priority = 0;
        size_t left_len = 0, right_len = 0;
    };
    struct Order {
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.priority < b.priority || (a.priority == b.priority && a.left > b.left);
        }
    };
    std::priority_queue<Bigram, std::vector<Bigram>, Order> queue;
    auto try_pair = [&](int l, int r) {
        if (l < 0 || r < 0) return;
        const Symbol& a = sym[static_cast<size_t>(l)];
        const Symbol& b = sym[static_cast<size_t>(r)];
        const std::optional<double> p =
            priority(text.substr(a.start, a.len), text.substr(b.start, b.len));
        if (p) queue.push({l, r, *p, a.len, b.len});
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_pair(i - 1, i);
    while (!queue.empty()) {
        const Bigram bg = queue.top();
        queue.pop();
        Symbol& l = sym[static_cast<size_t>(bg.left)];
        Symbol& r = sym[static_cast<size_t>(bg.right)];
        if (l.len != bg.left_len || r.len != bg.right_len || l.next != bg.right) continue;  // stale
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = bg.left;
        try_pair(l.prev, bg.left);
        try_pair(bg.left, l.next);
    }
}

// Calls f(piece) for every symbol left after merging, in text order.
template <class F>
void for_each_symbol(std::string_view text, const std::vector<Symbol>& sym, F&& f) {
    for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[static_cast<size_t>(i)].next) {
        const Symbol& s = sym[static_cast<size_t>(i)];
        f(text.substr(s.start, s.len));
    }
}

}  // namespace moe::tok
