// A zero-initialized buffer whose pages are only materialized when first written: an anonymous
// mapping instead of a vector's memset. A KV cache sized for 4096 positions costs nothing
// until the context actually grows (a 1 GiB f32 cache was memset at every session start).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <utility>

namespace moe {

class ZeroedBuffer {
  public:
    ZeroedBuffer() = default;
    explicit ZeroedBuffer(size_t bytes) : size_(bytes) {
        if (bytes == 0) return;
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        data_ = p;
    }
    ZeroedBuffer(ZeroedBuffer&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    ZeroedBuffer& operator=(ZeroedBuffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    ZeroedBuffer(const ZeroedBuffer&) = delete;
    ZeroedBuffer& operator=(const ZeroedBuffer&) = delete;
    ~ZeroedBuffer() { release(); }

    template <class T>
    T* as() const {
        return static_cast<T*>(data_);
    }
    size_t size() const { return size_; }

  private:
    void release() {
        if (data_) ::munmap(data_, size_);
        data_ = nullptr;
    }
    void* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace moe
