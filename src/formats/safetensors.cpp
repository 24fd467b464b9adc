#include "formats/safetensors.h"
#include "core/input_file.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace moe {

namespace {

// The spec caps the header at 100 MB; anything larger is treated as corrupt.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct StDType {
    const char* name;
    DType dtype;
    int bytes;
};
constexpr StDType kDTypes[] = {
    {"F32", DType::F32, 4},
    {"F16", DType::F16, 2},
    {"BF16", DType::BF16, 2},
    // Raw bytes: gpt-oss's packed MXFP4 experts (*_blocks, *_scales). Only the MXFP4 repacking in
    // hf_source.cpp reads them; anywhere else the loader rejects the type.
    {"U8", DType::I8, 1},
};

// Parses one tensor entry of the header. Throws nothing: every json access is type-checked.
Result<SafetensorsTensor> parse_entry(const std::string& name, const nlohmann::json& e,
                                      const uint8_t* data, uint64_t data_size) {
    if (!e.is_object()) return make_error("tensor '{}': header entry is not an object", name);
    auto dt = e.find("dtype");
    if (dt == e.end() || !dt->is_string())
        return make_error("tensor '{}': missing or non-string 'dtype'", name);
    const std::string dts = dt->get<std::string>();
    const StDType* found = nullptr;
    for (const auto& d : kDTypes)
        if (dts == d.name) found = &d;
    if (!found)
        return make_error("tensor '{}': dtype '{}' is not supported (supported: F32, F16, BF16, U8)",
                          name, dts);

    auto sh = e.find("shape");
    if (sh == e.end() || !sh->is_array())
        return make_error("tensor '{}': missing or non-array 'shape'", name);
    if (sh->size() > 4)
        return make_error("tensor '{}': rank {} is not supported (at most 4)", name, sh->size());
    SafetensorsTensor t;
    t.name = name;
    t.dtype = found->dtype;
    uint64_t numel = 1;
    for (const auto& d : *sh) {
        if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
            return make_error("tensor '{}': shape entries must be non-negative integers", name);
        const uint64_t x = d.get<uint64_t>();
        if (x > (1ull << 40) || (x != 0 && numel > (1ull << 60) / x))
            return make_error("tensor '{}': shape is too large", name);
        numel *= x;
        t.shape.dim[t.shape.rank++] = int64_t(x);
    }

    auto off = e.find("data_offsets");
    if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
        return make_error("tensor '{}': 'data_offsets' must be two non-negative integers", name);
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data_size)
        return make_error(
            "tensor '{}': data_offsets [{}, {}] lie outside the data section ({} bytes)", name,
            begin, end, data_size);
    const uint64_t want = numel * uint64_t(found->bytes);
    if (end - begin != want)
        return make_error("tensor '{}': data_offsets span {} bytes but shape {} of {} needs {}",
                          name, end - begin, t.shape.str(), dts, want);
    t.data = data + begin;
    t.nbytes = want;
    return t;
}

}  // namespace

Result<std::shared_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
    return open(path, weight_memory());
}

Result<std::shared_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path,
                                                               WeightMemory mem) {
    MOE_TRY(auto mapped, MappedFile::open(path, mem));
    return parse(std::move(mapped));
}

Result<std::shared_ptr<SafetensorsFile>> SafetensorsFile::parse(std::shared_ptr<MappedFile> m) {
    const std::string& path = m->path();
    const uint64_t size = m->size();
    if (size < 8)
        return make_error("'{}': not a safetensors file: {} bytes, too short for the header length",
                          path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | m->data()[i];
    if (hlen > size - 8)
        return make_error(
            "'{}': header length {} exceeds the file size ({} bytes): truncated or "
            "not a safetensors file",
            path, hlen, size);
    if (hlen > kMaxHeaderBytes)
        return make_error("'{}': header length {} exceeds the 100 MB limit", path, hlen);
    if (hlen < 2) return make_error("'{}': header of {} bytes is not a JSON object", path, hlen);

    const char* hbeg = reinterpret_cast<const char*>(m->data() + 8);
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(hbeg, hbeg + hlen);
    } catch (const nlohmann::json::exception& e) {
        return make_error("'{}': invalid JSON header: {}", path, e.what());
    }
    if (!header.is_object()) return make_error("'{}': JSON header is not an object", path);

    auto out = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
    out->mapped_ = m;
    const uint8_t* data = m->data() + 8 + hlen;
    const uint64_t data_size = size - 8 - hlen;
    try {
        for (auto it = header.begin(); it != header.end(); ++it) {
            if (it.key() == "__metadata__") continue;
            auto t = parse_entry(it.key(), it.value(), data, data_size);
            if (!t.ok()) return with_context(t.error(), "'" + path + "'");
            out->index_.emplace(t->name, out->tensors_.size());
            out->tensors_.push_back(std::move(t).value());
        }
    } catch (const nlohmann::json::exception& e) {
        return make_error("'{}': malformed header: {}", path, e.what());
    }
    return out;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Result<std::string> read_text_file(const std::string& path) {
    return read_input_file(path, uint64_t(64) << 20);  // index JSON: a regular file, capped
}

// weight_map values must be plain file names inside the folder.
bool is_plain_file_name(const std::string& f) {
    return !f.empty() && f != "." && f != ".." && f.find('/') == std::string::npos &&
           f.find('\\') == std::string::npos && f.find('\0') == std::string::npos;
}

}  // namespace

Result<std::shared_ptr<SafetensorsSet>> SafetensorsSet::open_folder(const std::string& dir) {
    return open_folder(dir, weight_memory());
}

Result<std::shared_ptr<SafetensorsSet>> SafetensorsSet::open_folder(const std::string& dir,
                                                                    WeightMemory mem) {
    namespace fs = std::filesystem;
    auto set = std::make_shared<SafetensorsSet>();
    const fs::path root(dir);
    const fs::path index_path = root / "model.safetensors.index.json";
    std::error_code ec;
    std::vector<std::string> file_names;
    // name -> file name claimed by the index (checked after the files are opened)
    std::vector<std::pair<std::string, std::string>> claimed;

    if (fs::is_regular_file(index_path, ec)) {
        MOE_TRY(auto text, read_text_file(index_path.string()));
        try {
            auto j = nlohmann::json::parse(text);
            auto wm = j.is_object() ? j.find("weight_map") : j.end();
            if (!j.is_object() || wm == j.end() || !wm->is_object())
                return make_error("'{}': missing 'weight_map' object", index_path.string());
            for (auto it = wm->begin(); it != wm->end(); ++it) {
                if (!it.value().is_string())
                    return make_error("'{}': weight_map entry '{}' is not a string",
                                      index_path.string(), it.key());
                std::string f = it.value().get<std::string>();
                if (!is_plain_file_name(f))
                    return make_error(
                        "'{}': weight_map entry '{}' names '{}', not a file in the "
                        "folder",
                        index_path.string(), it.key(), f);
                claimed.emplace_back(it.key(), f);
                if (std::find(file_names.begin(), file_names.end(), f) == file_names.end())
                    file_names.push_back(f);
            }
        } catch (const nlohmann::json::exception& e) {
            return make_error("'{}': invalid JSON: {}", index_path.string(), e.what());
        }
        std::sort(file_names.begin(), file_names.end());
        if (file_names.empty()) return make_error("'{}': empty weight_map", index_path.string());
    } else {
        fs::directory_iterator it(root, ec), end;
        if (ec) return make_error("cannot list '{}': {}", dir, ec.message());
        for (; it != end; it.increment(ec)) {
            if (ec) return make_error("cannot list '{}': {}", dir, ec.message());
            const std::string name = it->path().filename().string();
            if (name.size() > 12 && name.ends_with(".safetensors") && it->is_regular_file(ec))
                file_names.push_back(name);
        }
        std::sort(file_names.begin(), file_names.end());
        if (file_names.empty()) return make_error("'{}': no *.safetensors files found", dir);
    }

    for (const auto& f : file_names) {
        MOE_TRY(auto file, SafetensorsFile::open((root / f).string(), mem));
        for (const auto& t : file->tensors()) {
            auto [pos, inserted] = set->index_.emplace(t.name, &t);
            if (!inserted) {
                std::string other = "another file";
                for (const auto& prev : set->files_)
                    if (prev->find(t.name) == pos->second) other = prev->path();
                return make_error("'{}': tensor '{}' occurs in both '{}' and '{}'", dir, t.name,
                                  other, file->path());
            }
        }
        set->files_.push_back(std::move(file));
    }
    for (const auto& [name, f] : claimed) {
        const SafetensorsTensor* t = set->find(name);
        if (!t || std::none_of(set->files_.begin(), set->files_.end(), [&](const auto& file) {
                return fs::path(file->path()).filename() == f && file->find(name) == t;
            }))
            return make_error("'{}': weight_map places '{}' in '{}', but that file lacks it",
                              index_path.string(), name, f);
    }
    return set;
}

std::vector<std::string> SafetensorsSet::names() const {
    std::vector<std::string> out;
    out.reserve(index_.size());
    for (const auto& [n, t] : index_) out.push_back(n);
    std::sort(out.begin(), out.end());
    return out;
}

const SafetensorsTensor* SafetensorsSet::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : it->second;
}

uint64_t SafetensorsSet::total_bytes() const {
    uint64_t n = 0;
    for (const auto& f : files_) n += f->file_size();
    return n;
}

}  // namespace moe
