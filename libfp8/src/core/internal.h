/*
 * internal.h — shared helpers for libfp8's sources (not installed, not public).
 * Error reporting: every entry point validates its arguments and returns
 * fp8_fail(status, "fp8_fn", "what is wrong", ...) so that fp8_last_error()
 * names the function and the problem.
 */
#ifndef FP8_INTERNAL_H
#define FP8_INTERNAL_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fp8.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Records "fn: message" as this thread's last error and returns status. */
/* Writes "fn: <fmt...>" into buf (cap bytes, truncated): the message format of
 * every library's last-error slot (fp8_fail here, fp8_dist_fail in libfp8_dist). */
static inline void fp8_format_error(char *buf, size_t cap, const char *fn, const char *fmt, va_list ap) {
    int k = snprintf(buf, cap, "%s: ", fn);
    if (k < 0 || k >= (int)cap) k = 0;
    vsnprintf(buf + k, cap - (size_t)k, fmt, ap);
}

int32_t fp8_fail(int32_t status, const char *fn, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Defines one library's last-error slot: a thread-local buffer `buf`, its
 * getter `const char *get(void)` and `int32_t fail(status, fn, fmt, ...)`,
 * which records "fn: message" there and returns status. libfp8 (status.c) and
 * libfp8_dist (dist_mpi.c) each expand it once, so each library keeps its own
 * message while the rules live here. */
#define FP8_DEFINE_LAST_ERROR(buf, get, fail)                                     \
    static _Thread_local char buf[1024];                                          \
    const char *get(void) { return buf; }                                         \
    int32_t fail(int32_t status, const char *fn, const char *fmt, ...) {          \
        va_list ap;                                                               \
        va_start(ap, fmt);                                                        \
        fp8_format_error(buf, sizeof buf, fn, fmt, ap);                           \
        va_end(ap);                                                               \
        return status;                                                            \
    }

/* Bytes per element of a dtype, 0 when the dtype is unknown. */
int32_t fp8_dtype_size(int32_t dtype);
/* "float32", "bfloat16", "float8_e4m3fn", ... or "unknown". */
const char *fp8_dtype_name(int32_t dtype);

#define FP8_REQUIRE(cond, fn, ...)                                       \
    do {                                                                 \
        if (!(cond)) return fp8_fail(FP8_ERR_INVALID_ARG, fn, __VA_ARGS__); \
    } while (0)

/* The most elements any op accepts (and the allocator's byte cap, fp8_alloc):
 * 2^46 elements of at most 8 bytes stay far below INT64_MAX, so no byte count
 * computed from a checked element count can overflow (docs/architecture.md). */
#define FP8_MAX_ELEMS ((int64_t)1 << 46)
/* a * b <= FP8_MAX_ELEMS for a, b >= 0: an element count whose byte size cannot overflow. */
static inline int fp8_count_ok(int64_t a, int64_t b) {
    return a >= 0 && b >= 0 && (a == 0 || b <= FP8_MAX_ELEMS / a);
}

#define FP8_REQUIRE_PTR(p, fn) FP8_REQUIRE((p) != NULL, fn, "%s is NULL", #p)
/* The element-wise entry points' checks, shared by the CPU ops and their CUDA
 * twins so that both answer a bad call in the same words. A data pointer may
 * be NULL only when there is nothing to read or write. */
#define FP8_REQUIRE_N(n, fn)                                                                    \
    FP8_REQUIRE((n) >= 0 && (n) <= FP8_MAX_ELEMS, fn, "n must be >= 0 and at most 2^46, got %lld", (long long)(n))
#define FP8_REQUIRE_DATA(p, n, fn) \
    FP8_REQUIRE((p) != NULL || (n) == 0, fn, "%s is NULL with %lld elements", #p, (long long)(n))
#define FP8_REQUIRE_HP(dt, what, fn)                                                          \
    FP8_REQUIRE(fp8_is_float_hp(dt), fn, "%s must be float32 or bfloat16, got %s (%d)", what, \
                fp8_dtype_name(dt), (int)(dt))
#define FP8_REQUIRE_FP8(dt, what, fn)                                                        \
    FP8_REQUIRE(fp8_is_fp8(dt), fn, "%s must be float8_e4m3fn or float8_e5m2, got %s (%d)", \
                what, fp8_dtype_name(dt), (int)(dt))

static inline int fp8_is_float_hp(int32_t dt) { return dt == FP8_DTYPE_F32 || dt == FP8_DTYPE_BF16; }
static inline int fp8_is_fp8(int32_t dt) { return dt == FP8_DTYPE_E4M3FN || dt == FP8_DTYPE_E5M2; }
/* The fnuz formats (float8_e4m3fnuz, float8_e5m2fnuz): the CPU kernels take them. */
static inline int fp8_is_fnuz(int32_t dt) { return dt == FP8_DTYPE_E4M3FNUZ || dt == FP8_DTYPE_E5M2FNUZ; }
/* Any fp8 format the CPU kernels encode and decode. */
static inline int fp8_is_fp8_cpu(int32_t dt) { return fp8_is_fp8(dt) || fp8_is_fnuz(dt); }
#define FP8_REQUIRE_FP8_CPU(dt, what, fn)                                                        \
    FP8_REQUIRE(fp8_is_fp8_cpu(dt), fn,                                                          \
                "%s must be float8_e4m3fn, float8_e5m2, float8_e4m3fnuz or float8_e5m2fnuz, got " \
                "%s (%d)",                                                                       \
                what, fp8_dtype_name(dt), (int)(dt))

/* bf16 <-> f32. bf16 is the top half of an f32; rounding is to nearest even,
 * NaN stays NaN (quiet bit set). */
static inline float fp8_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t fp8_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* IEEE half <-> f32 with integer arithmetic (no F16C needed): decode is exact;
 * encode rounds to nearest even, overflows to inf, keeps NaN quiet with its sign. */
static inline float fp8_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, u;
    if (e == 0x1Fu)
        u = sign | 0x7F800000u | (m << 13) | (m ? 0x400000u : 0u);
    else if (e != 0)
        u = sign | ((e + 112u) << 23) | (m << 13);
    else { /* zero or subnormal: m * 2^-24, exact in f32 */
        float f = (float)m * 5.9604644775390625e-08f;
        memcpy(&u, &f, 4);
        u |= sign;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t fp8_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu)); /* NaN */
    if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* >= 65520 rounds to inf */
    if (a >= 0x38800000u) { /* normal half: drop 13 bits with RNE */
        const uint32_t v = a - (112u << 23);
        return (uint16_t)(sign | ((v + 0xFFFu + ((v >> 13) & 1u)) >> 13));
    }
    if (a < 0x33000000u) return sign; /* below half the smallest subnormal (2^-25) */
    /* subnormal half: units of 2^-24, round to nearest even */
    const uint32_t e = a >> 23, sig = (a & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - e; /* value = sig * 2^(e - 150) = q * 2^-24 */
    uint32_t q = sig >> shift;
    const uint32_t rest = sig & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

/* F32, BF16 or F16: what the entry points that take float16 accept. */
static inline int fp8_is_float_any(int32_t dt) { return fp8_is_float_hp(dt) || dt == FP8_DTYPE_F16; }
#define FP8_REQUIRE_HP16(dt, what, fn)                                                                 \
    FP8_REQUIRE(fp8_is_float_any(dt), fn, "%s must be float32, bfloat16 or float16, got %s (%d)", what, \
                fp8_dtype_name(dt), (int)(dt))

/* Load element i of an F32, BF16 or F16 buffer as f32; store likewise. */
static inline float fp8_load_hp(const void *p, int32_t dt, int64_t i) {
    if (dt == FP8_DTYPE_F16) return fp8_f16_to_f32(((const uint16_t *)p)[i]);
    return dt == FP8_DTYPE_F32 ? ((const float *)p)[i] : fp8_bf16_to_f32(((const uint16_t *)p)[i]);
}
static inline void fp8_store_hp(void *p, int32_t dt, int64_t i, float v) {
    if (dt == FP8_DTYPE_F32)
        ((float *)p)[i] = v;
    else if (dt == FP8_DTYPE_F16)
        ((uint16_t *)p)[i] = fp8_f32_to_f16(v);
    else
        ((uint16_t *)p)[i] = fp8_f32_to_bf16(v);
}

/* AdamW's per-step constants, computed once here for the CPU step and the CUDA
 * steps so that they agree bit for bit (bias corrections in double, as torch
 * does in Python): decay = 1 - lr*wd, w1 = 1 - beta1, w2 = 1 - beta2,
 * neg_step_size = -lr / (1 - beta1^step), bias_correction2_sqrt = sqrt(1 - beta2^step). */
typedef struct {
    float decay, w1, w2, neg_step_size, bias_correction2_sqrt;
} fp8_adamw_consts;

static inline fp8_adamw_consts fp8_adamw_constants_of(float lr, float beta1, float beta2,
                                                      float weight_decay, int64_t step) {
    fp8_adamw_consts c;
    c.decay = (float)(1.0 - (double)lr * (double)weight_decay);
    c.w1 = (float)(1.0 - (double)beta1);
    c.w2 = (float)(1.0 - (double)beta2);
    c.neg_step_size = (float)(-(double)lr / (1.0 - pow((double)beta1, (double)step)));
    c.bias_correction2_sqrt = (float)sqrt(1.0 - pow((double)beta2, (double)step));
    return c;
}

#ifdef __cplusplus
}
#endif

#endif
