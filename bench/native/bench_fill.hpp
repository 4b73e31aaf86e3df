/*
 * bench_fill.hpp — the operands of the native oneDNN baselines
 * (onednn_matmul_raw.cpp, onednn_matmul_layouts.cpp): deterministic values in
 * [-1, 1) as f32 or bf16 words, so both benchmarks time the same data.
 */
#ifndef FP8_BENCH_FILL_HPP
#define FP8_BENCH_FILL_HPP

#include <cstdint>
#include <cstring>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

namespace fp8bench {

using dt = dnnl::memory::data_type;

/* n values in [-1, 1) in the given type (bf16 as the top half of f32). */
inline std::vector<uint32_t> fill(int64_t n, dt d, unsigned seed) {
    std::vector<uint32_t> words((size_t)(d == dt::f32 ? n : (n + 1) / 2));
    uint32_t x = seed * 2654435761u + 1;
    for (int64_t i = 0; i < n; ++i) {
        x = x * 1664525u + 1013904223u;
        float f = (float)(x >> 8) / 8388608.0f - 1.0f;
        uint32_t u;
        std::memcpy(&u, &f, 4);
        if (d == dt::f32)
            words[(size_t)i] = u;
        else
            reinterpret_cast<uint16_t *>(words.data())[i] = (uint16_t)(u >> 16);
    }
    return words;
}

}  // namespace fp8bench

#endif
