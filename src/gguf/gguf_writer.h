// Streaming GGUF v3 writer. The tensor list is declared first, so every offset is known before a
// byte is written; then the header goes out, then each tensor's data in order, appended chunk by
// chunk by the caller. Nothing but the header is ever held in memory, so files of any size can
// be written. Layout follows the spec (docs/gguf.md upstream): little-endian, data section and
// every tensor aligned to `alignment` (32 unless general.alignment says otherwise).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/result.h"
#include "core/tensor.h"
#include "gguf/gguf.h"

namespace moe::gguf {

class Writer {
public:
    struct TensorDecl {
        std::string name;
        DType dtype = DType::F32;
        Shape shape;          // outermost first (written reversed, as ggml ne[])
        uint64_t nbytes = 0;  // rows * row bytes
        uint64_t offset = 0;  // relative to the data section (aligned)
    };

    explicit Writer(uint64_t alignment = 32) : alignment_(alignment) {}
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    // Declaration phase: metadata and tensors, in file order.
    void add_kv(std::string key, Value v);
    // Fails when the row length is not a multiple of the type's block size.
    Result<void> add_tensor(std::string name, DType t, Shape shape);

    const std::vector<TensorDecl>& tensors() const { return tensors_; }
    uint64_t header_bytes() const;  // where the data section starts (aligned)
    uint64_t data_bytes() const;    // every tensor, each padded to the alignment
    uint64_t file_bytes() const { return header_bytes() + data_bytes(); }

    // Writing phase: open() writes the header; append() adds bytes to the current tensor (they
    // must total its nbytes; finishing one moves on to the next and writes the padding);
    // close() checks that every tensor was written, flushes and renames the finished file into
    // place (see core/atomic_file.h). open() refuses when the disk lacks file_bytes() free.
    Result<void> open(const std::string& path);
    Result<void> append(const void* data, size_t n);
    Result<void> close();
    size_t current_tensor() const { return cur_; }

private:
    Result<void> put(const void* p, size_t n);
    Result<void> pad_to(uint64_t pos);
    std::vector<uint8_t> serialize_header() const;

    uint64_t alignment_;
    std::vector<std::pair<std::string, Value>> kv_;
    std::vector<TensorDecl> tensors_;
    uint64_t data_end_ = 0;  // unpadded end of the last tensor's data
    // Writing state.
    std::unique_ptr<AtomicFile> f_;
    std::string path_;
    uint64_t pos_ = 0;        // bytes written so far
    uint64_t data_start_ = 0;
    size_t cur_ = 0;          // tensor being written
    uint64_t cur_written_ = 0;
};

}  // namespace moe::gguf
