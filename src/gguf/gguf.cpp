#include "gguf/gguf.h"

#include <cstring>
#include <limits>

namespace moe::gguf {
namespace {

constexpr int kMaxArrayDepth = 8;
constexpr int kMaxDims = 4;  // GGML_MAX_DIMS

// Bounds-checked little-endian cursor over the mapped bytes.
class Cursor {
public:
    Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    size_t pos() const { return pos_; }
    size_t remaining() const { return size_ - pos_; }

    template <class T>
    Result<T> read(const char* what) {
        if (remaining() < sizeof(T))
            return make_error("truncated file: {} at offset {} needs {} bytes, {} left", what, pos_,
                              sizeof(T), remaining());
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    Result<std::string> read_string(const char* what) {
        MOE_TRY(uint64_t len, read<uint64_t>(what));
        if (len > remaining())
            return make_error("truncated file: {} at offset {} claims {} bytes, {} left", what,
                              pos_, len, remaining());
        std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(len));
        pos_ += size_t(len);
        return s;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

// Smallest encoded size of one value of a type: bounds an array's count before allocating.
size_t min_encoded_size(ValueType t) {
    switch (t) {
        case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
        case ValueType::U16: case ValueType::I16: return 2;
        case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
        case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
        case ValueType::STRING: return 8;
        case ValueType::ARRAY: return 12;
    }
    return 1;
}

bool valid_type(uint32_t t) { return t <= uint32_t(ValueType::F64); }

Result<Value> read_value(Cursor& c, ValueType type, int depth, const std::string& key) {
    Value out;
    out.type = type;
    switch (type) {
        case ValueType::U8: { MOE_TRY(auto x, c.read<uint8_t>("u8 value")); out.v = uint64_t(x); break; }
        case ValueType::I8: { MOE_TRY(auto x, c.read<int8_t>("i8 value")); out.v = int64_t(x); break; }
        case ValueType::U16: { MOE_TRY(auto x, c.read<uint16_t>("u16 value")); out.v = uint64_t(x); break; }
        case ValueType::I16: { MOE_TRY(auto x, c.read<int16_t>("i16 value")); out.v = int64_t(x); break; }
        case ValueType::U32: { MOE_TRY(auto x, c.read<uint32_t>("u32 value")); out.v = uint64_t(x); break; }
        case ValueType::I32: { MOE_TRY(auto x, c.read<int32_t>("i32 value")); out.v = int64_t(x); break; }
        case ValueType::U64: { MOE_TRY(auto x, c.read<uint64_t>("u64 value")); out.v = uint64_t(x); break; }
        case ValueType::I64: { MOE_TRY(auto x, c.read<int64_t>("i64 value")); out.v = int64_t(x); break; }
        case ValueType::F32: { MOE_TRY(auto x, c.read<float>("f32 value")); out.v = double(x); break; }
        case ValueType::F64: { MOE_TRY(auto x, c.read<double>("f64 value")); out.v = x; break; }
        case ValueType::BOOL: {
            MOE_TRY(auto x, c.read<uint8_t>("bool value"));
            if (x > 1) return make_error("metadata '{}': bool value {} is neither 0 nor 1", key, x);
            out.v = x != 0;
            break;
        }
        case ValueType::STRING: { MOE_TRY(auto s, c.read_string("string value")); out.v = std::move(s); break; }
        case ValueType::ARRAY: {
            if (depth >= kMaxArrayDepth)
                return make_error("metadata '{}': arrays nested deeper than {}", key, kMaxArrayDepth);
            MOE_TRY(uint32_t et, c.read<uint32_t>("array element type"));
            if (!valid_type(et)) return make_error("metadata '{}': unknown array element type {}", key, et);
            MOE_TRY(uint64_t n, c.read<uint64_t>("array length"));
            const ValueType elem = ValueType(et);
            if (n > c.remaining() / min_encoded_size(elem))
                return make_error("truncated file: metadata '{}' array of {} {} does not fit in the {} bytes left",
                                  key, n, value_type_name(elem), c.remaining());
            Array arr;
            arr.elem_type = elem;
            arr.items.reserve(size_t(n));
            for (uint64_t i = 0; i < n; ++i) {
                MOE_TRY(Value item, read_value(c, elem, depth + 1, key));
                arr.items.push_back(std::move(item));
            }
            out.v = std::move(arr);
            break;
        }
    }
    return out;
}

}  // namespace

std::string_view value_type_name(ValueType t) {
    static constexpr std::string_view names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                 "bool", "string", "array", "u64", "i64", "f64"};
    return uint32_t(t) <= 12 ? names[uint32_t(t)] : "?";
}

bool Value::is_int() const {
    switch (type) {
        case ValueType::U8: case ValueType::I8: case ValueType::U16: case ValueType::I16:
        case ValueType::U32: case ValueType::I32: case ValueType::U64: case ValueType::I64:
            return true;
        default:
            return false;
    }
}

std::optional<int64_t> Value::as_int() const {
    if (auto* u = std::get_if<uint64_t>(&v)) {
        if (*u > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
        return int64_t(*u);
    }
    if (auto* i = std::get_if<int64_t>(&v)) return *i;
    if (auto* b = std::get_if<bool>(&v)) return int64_t(*b);
    return std::nullopt;
}

std::optional<double> Value::as_float() const {
    if (auto* d = std::get_if<double>(&v)) return *d;
    if (auto i = as_int()) return double(*i);
    return std::nullopt;
}

std::optional<bool> Value::as_bool() const {
    if (auto* b = std::get_if<bool>(&v)) return *b;
    if (auto i = as_int()) return *i != 0;
    return std::nullopt;
}

const std::string* Value::as_string() const { return std::get_if<std::string>(&v); }
const Array* Value::as_array() const { return std::get_if<Array>(&v); }

std::string Value::to_string(size_t max_items) const {
    if (auto* s = as_string()) return "\"" + (s->size() > 60 ? s->substr(0, 57) + "..." : *s) + "\"";
    if (auto* a = as_array()) {
        std::string r = "[";
        for (size_t i = 0; i < a->items.size() && i < max_items; ++i)
            r += (i ? ", " : "") + a->items[i].to_string(max_items);
        if (a->items.size() > max_items) r += fmt::format(", ... ({} items)", a->items.size());
        return r + "]";
    }
    if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    if (auto* d = std::get_if<double>(&v)) return fmt::format("{}", *d);
    if (auto* u = std::get_if<uint64_t>(&v)) return std::to_string(*u);
    return std::to_string(std::get<int64_t>(v));
}

Result<std::shared_ptr<File>> File::open(const std::string& path) {
    return open(path, weight_memory());
}

Result<std::shared_ptr<File>> File::open(const std::string& path, WeightMemory mem) {
    MOE_TRY(auto mapped, MappedFile::open(path, mem));
    auto r = parse(std::move(mapped));
    if (!r.ok()) return with_context(r.error(), path);
    return r;
}

Result<std::shared_ptr<File>> File::parse(std::shared_ptr<MappedFile> mapped) {
    auto f = std::shared_ptr<File>(new File());
    f->mapped_ = mapped;
    Cursor c(mapped->data(), mapped->size());

    MOE_TRY(uint32_t magic, c.read<uint32_t>("magic"));
    if (magic != 0x46554747u)  // "GGUF" little-endian
        return make_error("not a GGUF file (bad magic 0x{:08x}, expected \"GGUF\")", magic);
    MOE_TRY(uint32_t version, c.read<uint32_t>("version"));
    if (version == 0x03000000u || version == 0x02000000u)
        return make_error("big-endian GGUF files are not supported");
    if (version != 2 && version != 3)
        return make_error("unsupported GGUF version {} (supported: 2, 3)", version);
    f->version_ = version;
    MOE_TRY(uint64_t n_tensors, c.read<uint64_t>("tensor count"));
    MOE_TRY(uint64_t n_kv, c.read<uint64_t>("metadata count"));
    // Each KV needs >= 8+4+1 bytes, each tensor info >= 8+4+8+4+8: bound before reserving.
    if (n_kv > c.remaining() / 13)
        return make_error("truncated file: {} metadata entries cannot fit in {} bytes", n_kv, c.remaining());
    if (n_tensors > c.remaining() / 32)
        return make_error("truncated file: {} tensor infos cannot fit in {} bytes", n_tensors, c.remaining());

    f->kv_.reserve(size_t(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
        MOE_TRY(std::string key, c.read_string("metadata key"));
        MOE_TRY(uint32_t type, c.read<uint32_t>("metadata value type"));
        if (!valid_type(type)) return make_error("metadata '{}': unknown value type {}", key, type);
        MOE_TRY(Value value, read_value(c, ValueType(type), 0, key));
        if (f->kv_index_.count(key)) return make_error("duplicate metadata key '{}'", key);
        f->kv_index_[key] = f->kv_.size();
        f->kv_.emplace_back(std::move(key), std::move(value));
    }

    if (const Value* a = f->find("general.alignment")) {
        auto al = a->as_int();
        if (!a->is_int() || !al || *al <= 0 || (*al & (*al - 1)) != 0 || *al > (1 << 20))
            return make_error("general.alignment must be a power of two integer, got {}", a->to_string());
        f->alignment_ = uint64_t(*al);
    }

    f->tensors_.reserve(size_t(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        TensorInfo t;
        MOE_TRY(t.name, c.read_string("tensor name"));
        MOE_TRY(uint32_t n_dims, c.read<uint32_t>("tensor rank"));
        if (n_dims == 0 || n_dims > kMaxDims)
            return make_error("tensor '{}': rank {} is outside 1..{}", t.name, n_dims, kMaxDims);
        uint64_t ne[kMaxDims] = {1, 1, 1, 1};
        for (uint32_t d = 0; d < n_dims; ++d) {
            MOE_TRY(ne[d], c.read<uint64_t>("tensor dimension"));
            if (ne[d] > uint64_t(std::numeric_limits<int64_t>::max()))
                return make_error("tensor '{}': dimension {} is {} (too large)", t.name, d, ne[d]);
        }
        MOE_TRY(uint32_t type, c.read<uint32_t>("tensor type"));
        auto tr = dtype_traits(type);
        if (!tr) return make_error("tensor '{}': unknown tensor type {}", t.name, type);
        t.dtype = tr->type;
        MOE_TRY(t.offset, c.read<uint64_t>("tensor offset"));

        // Element count and byte size, with overflow checks.
        uint64_t numel = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            if (ne[d] != 0 && numel > std::numeric_limits<uint64_t>::max() / 2 / ne[d])
                return make_error("tensor '{}': dimension product overflows", t.name);
            numel *= ne[d];
        }
        if (ne[0] % uint64_t(tr->block_elems) != 0)
            return make_error("tensor '{}': row length {} is not a multiple of the {} block size {}",
                              t.name, ne[0], tr->name, tr->block_elems);
        const uint64_t blocks = numel / uint64_t(tr->block_elems);
        if (blocks > std::numeric_limits<uint64_t>::max() / uint64_t(tr->block_bytes))
            return make_error("tensor '{}': byte size overflows", t.name);
        t.nbytes = blocks * uint64_t(tr->block_bytes);
        t.shape.rank = int(n_dims);
        for (uint32_t d = 0; d < n_dims; ++d) t.shape.dim[n_dims - 1 - d] = int64_t(ne[d]);
        if (f->tensor_index_.count(t.name)) return make_error("duplicate tensor '{}'", t.name);
        f->tensor_index_[t.name] = f->tensors_.size();
        f->tensors_.push_back(std::move(t));
    }

    const uint64_t al = f->alignment_;
    f->data_offset_ = (uint64_t(c.pos()) + al - 1) / al * al;
    const uint64_t size = mapped->size();
    if (f->data_offset_ > size && !f->tensors_.empty())
        return make_error("truncated file: data section starts at {} past the end ({} bytes)",
                          f->data_offset_, size);
    for (const auto& t : f->tensors_) {
        if (t.offset % al != 0)
            return make_error("tensor '{}': offset {} is not aligned to {}", t.name, t.offset, al);
        const uint64_t avail = size - std::min(size, f->data_offset_);
        if (t.offset > avail || t.nbytes > avail - t.offset)
            return make_error("tensor '{}': data [{}, {}) lies outside the file's data section ({} bytes){}",
                              t.name, t.offset, t.offset + t.nbytes, avail,
                              " (truncated file?)");
    }
    return f;
}

const Value* File::find(const std::string& key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}
std::optional<int64_t> File::get_int(const std::string& key) const {
    const Value* v = find(key);
    return v ? v->as_int() : std::nullopt;
}
std::optional<double> File::get_float(const std::string& key) const {
    const Value* v = find(key);
    return v ? v->as_float() : std::nullopt;
}
std::optional<bool> File::get_bool(const std::string& key) const {
    const Value* v = find(key);
    return v ? v->as_bool() : std::nullopt;
}
std::optional<std::string> File::get_string(const std::string& key) const {
    const Value* v = find(key);
    if (!v || !v->as_string()) return std::nullopt;
    return *v->as_string();
}
const Array* File::get_array(const std::string& key) const {
    const Value* v = find(key);
    return v ? v->as_array() : nullptr;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

TensorView File::view(const TensorInfo& t) const {
    return TensorView{t.dtype, t.shape, mapped_->data() + data_offset_ + t.offset};
}

}  // namespace moe::gguf
