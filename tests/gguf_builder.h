// A minimal GGUF writer for tests: crafts valid and deliberately broken files.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace moe::test {

class GgufBuilder {
public:
    uint32_t magic = 0x46554747u, version = 3;
    uint32_t alignment = 32;

    void kv_u32(const std::string& k, uint32_t v) { key(k, 4), pod(v), ++n_kv_; }
    void kv_f32(const std::string& k, float v) { key(k, 6), pod(v), ++n_kv_; }
    void kv_str(const std::string& k, const std::string& v) { key(k, 8), str(v), ++n_kv_; }
    void kv_raw(const std::string& k, uint32_t type, const std::vector<uint8_t>& bytes) {
        key(k, type);
        kv_.insert(kv_.end(), bytes.begin(), bytes.end());
        ++n_kv_;
    }
    // ne: ggml order (innermost first). data appended at the next aligned offset unless offset given.
    void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                const std::vector<uint8_t>& data, int64_t offset = -1) {
        TensorRec t{name, std::move(ne), type, 0};
        while (data_.size() % alignment) data_.push_back(0);
        t.offset = offset >= 0 ? uint64_t(offset) : data_.size();
        data_.insert(data_.end(), data.begin(), data.end());
        tensors_.push_back(t);
    }
    std::vector<uint8_t> bytes() const {
        std::vector<uint8_t> out;
        put(out, magic), put(out, version), put(out, uint64_t(tensors_.size())), put(out, n_kv_);
        out.insert(out.end(), kv_.begin(), kv_.end());
        for (const auto& t : tensors_) {
            put(out, uint64_t(t.name.size()));
            out.insert(out.end(), t.name.begin(), t.name.end());
            put(out, uint32_t(t.ne.size()));
            for (auto d : t.ne) put(out, d);
            put(out, t.type), put(out, t.offset);
        }
        while (out.size() % alignment) out.push_back(0);
        out.insert(out.end(), data_.begin(), data_.end());
        return out;
    }
    std::string write(const std::string& path) const {
        const auto b = bytes();
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
        return path;
    }

private:
    struct TensorRec {
        std::string name;
        std::vector<uint64_t> ne;
        uint32_t type;
        uint64_t offset;
    };
    template <class T>
    static void put(std::vector<uint8_t>& o, T v) {
        uint8_t b[sizeof(T)];
        std::memcpy(b, &v, sizeof(T));
        o.insert(o.end(), b, b + sizeof(T));
    }
    template <class T>
    void pod(T v) { put(kv_, v); }
    void str(const std::string& s) {
        put(kv_, uint64_t(s.size()));
        kv_.insert(kv_.end(), s.begin(), s.end());
    }
    void key(const std::string& k, uint32_t type) { str(k), put(kv_, type); }

    std::vector<uint8_t> kv_, data_;
    uint64_t n_kv_ = 0;
    std::vector<TensorRec> tensors_;
};

inline std::vector<uint8_t> f32_bytes(size_t n, float v = 0.5f) {
    std::vector<uint8_t> b(n * 4);
    for (size_t i = 0; i < n; ++i) std::memcpy(b.data() + i * 4, &v, 4);
    return b;
}

}  // namespace moe::test
