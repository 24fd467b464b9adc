#include "gguf/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace moe::gguf {

namespace {

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

struct Buf {
    std::vector<uint8_t> b;
    template <class T>
    void pod(T v) {
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        b.insert(b.end(), p, p + sizeof(T));
    }
    void str(const std::string& s) {
        pod<uint64_t>(s.size());
        b.insert(b.end(), s.begin(), s.end());
    }
};

// The integer bits of a scalar value whatever alternative holds it.
uint64_t int_bits(const Value& v) {
    if (auto* u = std::get_if<uint64_t>(&v.v)) return *u;
    if (auto* i = std::get_if<int64_t>(&v.v)) return uint64_t(*i);
    if (auto* b = std::get_if<bool>(&v.v)) return *b ? 1 : 0;
    if (auto* d = std::get_if<double>(&v.v)) return uint64_t(int64_t(*d));
    return 0;
}

double float_val(const Value& v) {
    if (auto* d = std::get_if<double>(&v.v)) return *d;
    return double(int64_t(int_bits(v)));
}

void put_scalar(Buf& out, ValueType t, const Value& v) {
    switch (t) {
        case ValueType::U8: out.pod<uint8_t>(uint8_t(int_bits(v))); break;
        case ValueType::I8: out.pod<int8_t>(int8_t(int_bits(v))); break;
        case ValueType::U16: out.pod<uint16_t>(uint16_t(int_bits(v))); break;
        case ValueType::I16: out.pod<int16_t>(int16_t(int_bits(v))); break;
        case ValueType::U32: out.pod<uint32_t>(uint32_t(int_bits(v))); break;
        case ValueType::I32: out.pod<int32_t>(int32_t(int_bits(v))); break;
        case ValueType::U64: out.pod<uint64_t>(int_bits(v)); break;
        case ValueType::I64: out.pod<int64_t>(int64_t(int_bits(v))); break;
        case ValueType::F32: out.pod<float>(float(float_val(v))); break;
        case ValueType::F64: out.pod<double>(float_val(v)); break;
        case ValueType::BOOL: out.pod<uint8_t>(int_bits(v) ? 1 : 0); break;
        case ValueType::STRING: {
            const std::string* s = v.as_string();
            out.str(s ? *s : std::string());
            break;
        }
        case ValueType::ARRAY: {
            const Array* a = v.as_array();
            const ValueType et = a ? a->elem_type : ValueType::U8;
            out.pod<uint32_t>(uint32_t(et));
            out.pod<uint64_t>(a ? a->items.size() : 0);
            if (a)
                for (const auto& item : a->items) put_scalar(out, et, item);
            break;
        }
    }
}

}  // namespace

Writer::~Writer() = default;

void Writer::add_kv(std::string key, Value v) {
    if (key == "general.alignment") alignment_ = uint64_t(std::max<int64_t>(1, int64_t(int_bits(v))));
    kv_.emplace_back(std::move(key), std::move(v));
}

Result<void> Writer::add_tensor(std::string name, DType t, Shape shape) {
    const auto& tr = traits(t);
    if (shape.rank < 1) return make_error("tensor '{}': empty shape", name);
    if (shape.last() % tr.block_elems != 0)
        return make_error("tensor '{}': row of {} is not a multiple of {}'s block size {}", name,
                          shape.last(), tr.name, tr.block_elems);
    TensorDecl d;
    d.name = std::move(name);
    d.dtype = t;
    d.shape = shape;
    d.nbytes = uint64_t(shape.rows()) * uint64_t(dtype_row_bytes(t, shape.last()));
    d.offset = tensors_.empty() ? 0 : align_up(data_end_, alignment_);
    data_end_ = d.offset + d.nbytes;
    tensors_.push_back(std::move(d));
    return {};
}

std::vector<uint8_t> Writer::serialize_header() const {
    Buf out;
    out.pod<uint32_t>(0x46554747u);  // "GGUF"
    out.pod<uint32_t>(3);
    out.pod<uint64_t>(tensors_.size());
    out.pod<uint64_t>(kv_.size());
    for (const auto& [k, v] : kv_) {
        out.str(k);
        out.pod<uint32_t>(uint32_t(v.type));
        put_scalar(out, v.type, v);
    }
    for (const auto& t : tensors_) {
        out.str(t.name);
        out.pod<uint32_t>(uint32_t(t.shape.rank));
        for (int i = t.shape.rank - 1; i >= 0; --i) out.pod<uint64_t>(uint64_t(t.shape[i]));
        out.pod<uint32_t>(uint32_t(t.dtype));
        out.pod<uint64_t>(t.offset);
    }
    return std::move(out.b);
}

uint64_t Writer::header_bytes() const { return align_up(serialize_header().size(), alignment_); }

uint64_t Writer::data_bytes() const { return align_up(data_end_, alignment_); }

Result<void> Writer::put(const void* p, size_t n) {
    MOE_TRY_VOID(f_->write(p, n));
    pos_ += n;
    return {};
}

Result<void> Writer::pad_to(uint64_t pos) {
    static const uint8_t zeros[64] = {};
    while (pos_ < pos) MOE_TRY_VOID(put(zeros, size_t(std::min<uint64_t>(64, pos - pos_))));
    return {};
}

Result<void> Writer::open(const std::string& path) {
    if (f_) return make_error("{}: writer already open", path);
    path_ = path;
    MOE_TRY_VOID(check_free_space(path, file_bytes()));
    MOE_TRY(auto f, AtomicFile::create(path));
    f_ = std::make_unique<AtomicFile>(std::move(f));
    std::setvbuf(f_->stream(), nullptr, _IOFBF, 1 << 20);
    const auto header = serialize_header();
    MOE_TRY_VOID(put(header.data(), header.size()));
    MOE_TRY_VOID(pad_to(align_up(pos_, alignment_)));
    data_start_ = pos_;
    cur_ = 0;
    cur_written_ = 0;
    return {};
}

Result<void> Writer::append(const void* data, size_t n) {
    if (!f_) return make_error("writer is not open");
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        if (cur_ >= tensors_.size()) return make_error("{}: more data than declared tensors", path_);
        const TensorDecl& t = tensors_[cur_];
        if (cur_written_ == 0) MOE_TRY_VOID(pad_to(data_start_ + t.offset));
        const size_t k = size_t(std::min<uint64_t>(n, t.nbytes - cur_written_));
        MOE_TRY_VOID(put(p, k));
        p += k;
        n -= k;
        cur_written_ += k;
        if (cur_written_ == t.nbytes) {
            ++cur_;
            cur_written_ = 0;
        }
    }
    return {};
}

Result<void> Writer::close() {
    if (!f_) return make_error("writer is not open");
    // Zero-byte tensors need no data; skip them.
    while (cur_ < tensors_.size() && tensors_[cur_].nbytes == 0) ++cur_;
    if (cur_ != tensors_.size() || cur_written_ != 0) {
        f_.reset();  // removes the unfinished file
        return make_error("{}: only {} of {} tensors were written", path_, cur_, tensors_.size());
    }
    auto r = pad_to(data_start_ + data_bytes());
    if (!r.ok()) {
        f_.reset();
        return r;
    }
    auto c = f_->commit();
    f_.reset();
    return c;
}

}  // namespace moe::gguf
