// TensorView: a non-owning view of a (possibly quantized) tensor. Shapes are outermost first,
// like torch: a weight of GGUF ne = [n_embd, n_ff] is Shape{n_ff, n_embd} here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moe {

struct Shape {
    std::array<int64_t, 4> dim{};
    int rank = 0;

    Shape() = default;
    Shape(std::initializer_list<int64_t> d) {
        for (int64_t x : d) dim[rank++] = x;
    }
    int64_t operator[](int i) const { return dim[i]; }
    int64_t numel() const {
        int64_t n = 1;
        for (int i = 0; i < rank; ++i) n *= dim[i];
        return n;
    }
    int64_t last() const { return rank ? dim[rank - 1] : 1; }
    int64_t rows() const { return rank ? numel() / dim[rank - 1] : 1; }  // all but the last dim
    bool operator==(const Shape& o) const {
        if (rank != o.rank) return false;
        for (int i = 0; i < rank; ++i)
            if (dim[i] != o.dim[i]) return false;
        return true;
    }
    std::string str() const;
};

struct TensorView {
    DType dtype = DType::F32;
    Shape shape;
    const void* data = nullptr;  // rows are contiguous; weights usually point into an mmap

    bool empty() const { return data == nullptr; }
    int64_t row_bytes() const { return dtype_row_bytes(dtype, shape.last()); }
    int64_t nbytes() const { return shape.rows() * row_bytes(); }
    const uint8_t* row(int64_t r) const {
        return static_cast<const uint8_t*>(data) + r * row_bytes();
    }
    // Slice i of the outermost dimension, e.g. one expert of [n_expert, n_ff, n_embd].
    TensorView slice(int64_t i) const;
};

// An owned f32 buffer with a shape: activations and converted weights.
struct Tensor {
    Shape shape;
    std::vector<float> data;

    Tensor() = default;
    explicit Tensor(Shape s) : shape(s), data(size_t(s.numel()), 0.0f) {}
    float* ptr() { return data.data(); }
    const float* ptr() const { return data.data(); }
    TensorView view() const { return TensorView{DType::F32, shape, data.data()}; }
};

}  // namespace moe
