#include "analysis/compare_failures.h"

#include <fmt/format.h>

#include <cctype>
#include <set>

#include "core/utf8.h"

namespace moe {

double repeated_ngram_share(const std::vector<int32_t>& ids, int n) {
    if (n <= 0 || int(ids.size()) < 2 * n) return 0.0;
    std::set<std::vector<int32_t>> seen;
    int64_t total = 0, repeats = 0;
    for (size_t i = 0; i + size_t(n) <= ids.size(); ++i) {
        std::vector<int32_t> g(ids.begin() + ptrdiff_t(i), ids.begin() + ptrdiff_t(i) + n);
        ++total;
        if (!seen.insert(std::move(g)).second) ++repeats;
    }
    return total ? double(repeats) / double(total) : 0.0;
}

std::vector<std::string> detect_failures(const std::string& text, const std::vector<int32_t>& ids,
                                         double threshold, double* repeat_share) {
    std::vector<std::string> f;
    const double rep = repeated_ngram_share(ids, 4);
    if (repeat_share) *repeat_share = rep;
    bool blank = true;
    for (char c : text)
        if (!std::isspace(static_cast<unsigned char>(c))) blank = false;
    if (blank) f.push_back("empty output");
    if (rep > threshold)
        f.push_back(fmt::format("repetition loop ({:.0f}% of 4-grams repeated)", rep * 100));
    if (!utf8::is_valid(text)) f.push_back("invalid UTF-8");
    return f;
}

}  // namespace moe
