/*
 * cast_checks.h — the argument checks of the fp8 cast entry points, shared by
 * the CPU (libfp8/src/cpu/cast.c) and their CUDA twins
 * (libfp8/src/cuda/cast_kernels.cu): one rule for each, the same order and the
 * same words. `pfx` is the prefix of the pointer arguments' names in the
 * messages: "" for the CPU's (dst_fp8, src, scale), "d_" for the device
 * pointers of the CUDA twins (d_dst_fp8, d_src, d_scale). C and C++.
 */
#ifndef FP8_CAST_CHECKS_H
#define FP8_CAST_CHECKS_H

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A data pointer may be NULL only when there is nothing to read or write (FP8_REQUIRE_DATA). */
#define FP8_REQUIRE_DATA_AS(p, pfx, name, n, fn)                                                  \
    FP8_REQUIRE((p) != NULL || (n) == 0, fn, "%s%s is NULL with %lld elements", pfx, name, \
                (long long)(n))
#define FP8_REQUIRE_PTR_AS(p, pfx, name, fn) FP8_REQUIRE((p) != NULL, fn, "%s%s is NULL", pfx, name)

/* Returns from the calling entry point when a check failed. */
#define FP8_CHECK(call)                   \
    do {                                  \
        const int32_t fp8_st_ = (call);   \
        if (fp8_st_ != FP8_OK) return fp8_st_; \
    } while (0)

/* The dtype sets are the device's: the CPU (cast.c) takes float16 and the fnuz
 * formats too, and defines these four before including this header; the CUDA
 * twins take the defaults. The rules and their words are otherwise the same. */
#ifndef FP8_CHECKS_REQUIRE_FP8
#define FP8_CHECKS_REQUIRE_FP8 FP8_REQUIRE_FP8
#define FP8_CHECKS_REQUIRE_HP FP8_REQUIRE_HP
#define FP8_CHECKS_CONVERTIBLE(dt) (fp8_is_float_hp(dt) || fp8_is_fp8(dt))
#define FP8_CHECKS_CONVERTIBLE_NAMES "float32, bfloat16, float8_e4m3fn or float8_e5m2"
#endif

static inline int fp8_is_convertible(int32_t dt) { return FP8_CHECKS_CONVERTIBLE(dt); }

/* Every cast into fp8 (quantize and its fused forms): dst_fp8 (n) <- src (n);
 * the scale is checked by the caller (an input of some forms, an output of others). */
static inline int32_t fp8_check_quantize(const char *fn, const char *pfx, const void *dst_fp8,
                                         int32_t fp8_dtype, const void *src, int32_t src_dtype,
                                         int64_t n) {
    FP8_CHECKS_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
    FP8_CHECKS_REQUIRE_HP(src_dtype, "src_dtype", fn);
    FP8_REQUIRE_N(n, fn);
    FP8_REQUIRE_DATA_AS(dst_fp8, pfx, "dst_fp8", n, fn);
    FP8_REQUIRE_DATA_AS(src, pfx, "src", n, fn);
    return FP8_OK;
}

/* dequantize: dst (n) <- decode(src_fp8 (n)) / scale. */
static inline int32_t fp8_check_dequantize(const char *fn, const char *pfx, const void *dst,
                                           int32_t dst_dtype, const void *src_fp8,
                                           int32_t fp8_dtype, int64_t n, const float *scale) {
    FP8_CHECKS_REQUIRE_HP(dst_dtype, "dst_dtype", fn);
    FP8_CHECKS_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
    FP8_REQUIRE_N(n, fn);
    FP8_REQUIRE_DATA_AS(dst, pfx, "dst", n, fn);
    FP8_REQUIRE_DATA_AS(src_fp8, pfx, "src_fp8", n, fn);
    FP8_REQUIRE_PTR_AS(scale, pfx, "scale", fn);
    return FP8_OK;
}

/* convert: dst (n) <- src (n) between F32, BF16, E4M3FN and E5M2. */
static inline int32_t fp8_check_convert(const char *fn, const char *pfx, const void *dst,
                                        int32_t dst_dtype, const void *src, int32_t src_dtype,
                                        int64_t n) {
    FP8_REQUIRE(fp8_is_convertible(dst_dtype), fn,
                "dst_dtype must be " FP8_CHECKS_CONVERTIBLE_NAMES ", got %s (%d)",
                fp8_dtype_name(dst_dtype), (int)dst_dtype);
    FP8_REQUIRE(fp8_is_convertible(src_dtype), fn,
                "src_dtype must be " FP8_CHECKS_CONVERTIBLE_NAMES ", got %s (%d)",
                fp8_dtype_name(src_dtype), (int)src_dtype);
    FP8_REQUIRE_N(n, fn);
    FP8_REQUIRE_DATA_AS(dst, pfx, "dst", n, fn);
    FP8_REQUIRE_DATA_AS(src, pfx, "src", n, fn);
    return FP8_OK;
}

/* The source of an amax (and of its scale when fp8_dtype >= 0): src (n) F32/BF16. */
static inline int32_t fp8_check_amax_src(const char *fn, const char *pfx, const void *src,
                                         int32_t src_dtype, int64_t n, int32_t fp8_dtype) {
    FP8_CHECKS_REQUIRE_HP(src_dtype, "src_dtype", fn);
    if (fp8_dtype >= 0) FP8_CHECKS_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
    FP8_REQUIRE_N(n, fn);
    FP8_REQUIRE_DATA_AS(src, pfx, "src", n, fn);
    return FP8_OK;
}

/* Delayed scaling's tables: count entries each, history_len >= 1 (the entries
 * themselves are checked where they can be read: on the host). */
static inline int32_t fp8_check_amax_history_tables(const char *fn, const char *pfx,
                                                    const void *amax, const void *history,
                                                    const void *scale, const void *fp8_dtype,
                                                    const void *clamp_to_f16, int64_t count,
                                                    int64_t history_len) {
    FP8_REQUIRE(count >= 0, fn, "count must be >= 0, got %lld", (long long)count);
    FP8_REQUIRE_N(count, fn);
    FP8_REQUIRE(history_len >= 1 && history_len <= FP8_MAX_ELEMS, fn,
                "history_len must be >= 1 and at most 2^46, got %lld", (long long)history_len);
    FP8_REQUIRE_DATA_AS(amax, pfx, "amax", count, fn);
    FP8_REQUIRE_DATA_AS(history, pfx, "history", count, fn);
    FP8_REQUIRE_DATA_AS(scale, pfx, "scale", count, fn);
    FP8_REQUIRE_DATA_AS(fp8_dtype, pfx, "fp8_dtype", count, fn);
    FP8_REQUIRE_DATA_AS(clamp_to_f16, pfx, "clamp_to_f16", count, fn);
    return FP8_OK;
}


/* Block casts (fp8_{cpu,cuda}_{quantize,dequantize}_{blockwise,mx}): the
 * matrix (rows, cols) and its block_rows x block_cols blocks. */
static inline int32_t fp8_check_block_dims(const char *fn, int64_t rows, int64_t cols, int64_t br,
                                           int64_t bc) {
    FP8_REQUIRE(rows >= 0 && cols >= 0, fn, "rows %lld and cols %lld must be >= 0", (long long)rows,
                (long long)cols);
    FP8_REQUIRE(br >= 1 && bc >= 1, fn, "block %lldx%lld must be at least 1x1", (long long)br,
                (long long)bc);
    FP8_REQUIRE(cols == 0 || rows <= INT64_MAX / cols, fn, "rows %lld x cols %lld overflows",
                (long long)rows, (long long)cols);
    return FP8_OK;
}

/* A block cast's three buffers (data out, scales, data in; named by the caller),
 * required only when the matrix has elements. */
static inline int32_t fp8_check_block_ptrs(const char *fn, const char *pfx, int64_t n, const void *out,
                                           const char *out_name, const void *scale,
                                           const char *scale_name, const void *in,
                                           const char *in_name) {
    if (n == 0) return FP8_OK;
    FP8_REQUIRE_PTR_AS(out, pfx, out_name, fn);
    FP8_REQUIRE_PTR_AS(scale, pfx, scale_name, fn);
    FP8_REQUIRE_PTR_AS(in, pfx, in_name, fn);
    return FP8_OK;
}

/* MX scale rule: FP8_MX_FLOOR or FP8_MX_RCEIL. */
static inline int32_t fp8_check_mx_mode(const char *fn, int32_t mode) {
    FP8_REQUIRE(mode == FP8_MX_FLOOR || mode == FP8_MX_RCEIL, fn,
                "mode must be 0 (FLOOR) or 1 (RCEIL), got %d", (int)mode);
    return FP8_OK;
}

#ifdef __cplusplus
}
#endif

#endif /* FP8_CAST_CHECKS_H */
