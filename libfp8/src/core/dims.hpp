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

/* Product of n dims; -1 if it overflows int64 or exceeds FP8_MAX_ELEMS (so that
 * its byte count cannot overflow). Dims are validated non-negative first. */
inline int64_t numel(const int64_t *dims, int n) {
    int64_t p = 1;
    for (int i = 0; i < n; ++i)
        if (__builtin_mul_overflow(p, dims[i], &p)) return -1;
    return p > FP8_MAX_ELEMS ? -1 : p;
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
    FP8_REQUIRE(numel(dims, ndim) >= 0, fn, "%s %s overflows int64 or has more than 2^46 elements", name, dims_str(dims, ndim).c_str());
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

/* The shape checks of a reduction (fp8_cpu_reduce and fp8_cuda_reduce): ndim in
 * 1..8, a known alg, valid dims, and dst a reduction of src (each dst dim equal
 * to src's or 1). */
inline int32_t check_reduce_shape(const char *fn, const int64_t *dst_dims, const int64_t *src_dims, int ndim,
                                  int32_t alg) {
    FP8_REQUIRE(ndim >= 1 && ndim <= 8, fn, "ndim=%d must be in 1..8", ndim);
    FP8_REQUIRE(alg >= FP8_REDUCE_SUM && alg <= FP8_REDUCE_MIN, fn, "unknown alg %d", alg);
    int32_t st;
    if ((st = check_dims(fn, "dst_dims", dst_dims, ndim)) != FP8_OK) return st;
    if ((st = check_dims(fn, "src_dims", src_dims, ndim)) != FP8_OK) return st;
    FP8_REQUIRE(broadcastable(dst_dims, src_dims, ndim), fn,
                "dst %s is not a reduction of src %s (each dst dim must equal src's or be 1)",
                dims_str(dst_dims, ndim).c_str(), dims_str(src_dims, ndim).c_str());
    return FP8_OK;
}

}  // namespace fp8dims

#endif
