/*
 * dims.hpp — host-side shape checks shared by the CPU ops (libfp8/src/cpu)
 * and their CUDA twins (libfp8/src/cuda), so both validate dims with the same
 * rules and the same error messages. C++ only; dims are int64 arrays.
 */
#ifndef FP8_DIMS_HPP
#define FP8_DIMS_HPP

#include <cstdint>
#include <cstring>
#include <string>

#include "internal.h"

namespace fp8dims {

/* Product of n dims; -1 if it overflows int64. Dims are validated non-negative first. */
inline int64_t numel(const int64_t *dims, int n) {
    int64_t p = 1;
    for (int i = 0; i < n; ++i)
        if (__builtin_mul_overflow(p, dims[i], &p)) return -1;
    return p;
}

/* "(2,3,4)" for error messages. */
inline std::string dims_str(const int64_t *d, int n) {
    std::string s = "(";
    for (int i = 0; i < n; ++i) {
        if (i) s += ",";
        s += std::to_string(d[i]);
    }
    return s + ")";
}

/* Every dim >= 0 and their product fits in int64; else a status naming `name`. */
inline int32_t check_dims(const char *fn, const char *name, const int64_t *dims, int ndim) {
    for (int d = 0; d < ndim; ++d)
        FP8_REQUIRE(dims[d] >= 0, fn, "%s[%d]=%lld must be >= 0", name, d, (long long)dims[d]);
    FP8_REQUIRE(numel(dims, ndim) >= 0, fn, "%s %s overflows int64", name, dims_str(dims, ndim).c_str());
    return FP8_OK;
}

/* Each x dim equals the dst dim or is 1. */
inline bool broadcastable(const int64_t *x, const int64_t *dst, int ndim) {
    for (int d = 0; d < ndim; ++d)
        if (x[d] != dst[d] && x[d] != 1) return false;
    return true;
}

inline bool same_dims(const int64_t *x, const int64_t *y, int ndim) {
    return std::memcmp(x, y, sizeof(int64_t) * ndim) == 0;
}

}  // namespace fp8dims

#endif
