/*
 * fp8_ref.h — scalar reference encode/decode for float8_e4m3fn and float8_e5m2,
 * and for the fnuz formats float8_e4m3fnuz / float8_e5m2fnuz (CPU only).
 * Header-only (static inline); compiles as C, C++ and CUDA (host and device).
 * Every vectorised kernel (CPU AVX2/AVX-512 in libfp8/src/cpu/cast*.c, CUDA)
 * must agree with these functions bit for bit.
 *
 * Numerics follow torch (c10/util/Float8_e4m3fn.h, Float8_e5m2.h) applied to a
 * clamped input, i.e. torchao's to_fp8_saturated:
 *   encode(x) = round_nearest_even(clamp(x, -max, +max)); NaN -> NaN with x's
 *   sign (0x7F | sign); +-inf -> +-max; subnormals rounded, not flushed.
 *   decode is exact; fp8 NaN decodes to the quiet NaN 0x7FC00000 with the fp8
 *   sign, e5m2 +-inf to +-inf.
 * The encoders use integer arithmetic only, so they do not depend on the
 * floating-point environment (rounding mode, flush-to-zero).
 */
#ifndef FP8_REF_H
#define FP8_REF_H

#include <stdint.h>
#include <string.h>

#include "fp8.h"

#if defined(__CUDACC__)
#define FP8_REF_INLINE static inline __host__ __device__
#else
#define FP8_REF_INLINE static inline
#endif

#define FP8_E4M3FN_MAX 448.0f
#define FP8_E5M2_MAX 57344.0f
#define FP8_E4M3FNUZ_MAX 240.0f
#define FP8_E5M2FNUZ_MAX 57344.0f

FP8_REF_INLINE uint32_t fp8_ref_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

FP8_REF_INLINE float fp8_ref_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Rounds the finite, non-negative f32 with bits `a` to nearest even on a grid
 * of fp8 codes: `mant_bits` mantissa bits, exponent bias `bias`; `a` must not
 * exceed the format's max. Returns the 7-bit magnitude code. */
FP8_REF_INLINE uint32_t fp8_ref_round_magnitude(uint32_t a, int mant_bits, int bias) {
    int32_t exp = (int32_t)(a >> 23);             /* biased f32 exponent, 0..254 */
    uint32_t mant = a & 0x7FFFFFu;
    int32_t min_normal_exp = 127 - bias + 1;      /* f32 exponent of the fp8 min normal */
    if (exp >= min_normal_exp) {
        /* Normal range: drop 23 - mant_bits mantissa bits with RNE; a carry
         * into the exponent is the correct result (and stays <= max). */
        int drop = 23 - mant_bits;
        uint32_t v = a + ((uint32_t)(bias - 127) << 23);
        uint32_t half = 1u << (drop - 1);
        uint32_t rest = v & ((1u << drop) - 1u);
        uint32_t q = v >> drop;
        if (rest > half || (rest == half && (q & 1u))) q += 1;
        return q;
    }
    /* Subnormal range: units of the smallest subnormal 2^(1 - bias - mant_bits).
     * value = sig * 2^(exp - 150) with sig the 24-bit significand. */
    uint32_t sig = exp == 0 ? mant : (mant | 0x800000u);
    int32_t e_unit = exp == 0 ? 1 : exp; /* f32 subnormals share exponent 1 */
    int32_t shift = (150 - e_unit) - (bias + mant_bits - 1);
    if (shift > 25) return 0; /* below half the smallest subnormal */
    uint32_t q = sig >> shift;
    uint32_t rest = sig & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) q += 1;
    return q;
}

/* f32 -> float8_e4m3fn byte (saturating, RNE). */
FP8_REF_INLINE uint8_t fp8_ref_e4m3fn_from_f32(float x) {
    uint32_t u = fp8_ref_f32_bits(x);
    uint32_t sign = (u >> 24) & 0x80u;
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint8_t)(sign | 0x7Fu);
    if (a > 0x43E00000u) a = 0x43E00000u; /* 448 */
    return (uint8_t)(sign | fp8_ref_round_magnitude(a, 3, 7));
}

/* f32 -> float8_e5m2 byte (saturating, RNE). */
FP8_REF_INLINE uint8_t fp8_ref_e5m2_from_f32(float x) {
    uint32_t u = fp8_ref_f32_bits(x);
    uint32_t sign = (u >> 24) & 0x80u;
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint8_t)(sign | 0x7Fu);
    if (a > 0x47600000u) a = 0x47600000u; /* 57344 */
    return (uint8_t)(sign | fp8_ref_round_magnitude(a, 2, 15));
}

/* f32 -> fnuz byte (float8_e4m3fnuz: mant_bits 3, bias 8, max 240; float8_e5m2fnuz:
 * 2, 16, 57344), saturating, RNE. The fnuz formats have no inf, no negative zero
 * and one NaN, 0x80 (as torch's fnuz conversions): NaN -> 0x80, a value that
 * rounds to zero -> 0x00 whatever its sign. */
FP8_REF_INLINE uint8_t fp8_ref_fnuz_from_f32(float x, int mant_bits, int bias, uint32_t max_bits) {
    uint32_t u = fp8_ref_f32_bits(x);
    uint32_t sign = (u >> 24) & 0x80u;
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return 0x80u;
    if (a > max_bits) a = max_bits;
    uint32_t q = fp8_ref_round_magnitude(a, mant_bits, bias);
    return q == 0 ? (uint8_t)0 : (uint8_t)(sign | q);
}

/* f32 -> float8_e4m3fnuz byte (saturating at 240, RNE). */
FP8_REF_INLINE uint8_t fp8_ref_e4m3fnuz_from_f32(float x) { return fp8_ref_fnuz_from_f32(x, 3, 8, 0x43700000u); }

/* f32 -> float8_e5m2fnuz byte (saturating at 57344, RNE). */
FP8_REF_INLINE uint8_t fp8_ref_e5m2fnuz_from_f32(float x) { return fp8_ref_fnuz_from_f32(x, 2, 16, 0x47600000u); }

/* fnuz byte -> f32 (exact); 0x80 is the quiet NaN 0x7FC00000. */
FP8_REF_INLINE float fp8_ref_fnuz_to_f32(uint8_t b, int mant_bits, int bias) {
    if (b == 0x80u) return fp8_ref_f32_from_bits(0x7FC00000u);
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t a = b & 0x7Fu;
    float v;
    if (a >= (1u << mant_bits))
        v = fp8_ref_f32_from_bits((a << (23 - mant_bits)) + ((uint32_t)(127 - bias) << 23));
    else /* subnormal: a * 2^(1 - bias - mant_bits), exact */
        v = (float)a * fp8_ref_f32_from_bits((uint32_t)(127 + 1 - bias - mant_bits) << 23);
    return fp8_ref_f32_from_bits(fp8_ref_f32_bits(v) | sign);
}

FP8_REF_INLINE float fp8_ref_e4m3fnuz_to_f32(uint8_t b) { return fp8_ref_fnuz_to_f32(b, 3, 8); }
FP8_REF_INLINE float fp8_ref_e5m2fnuz_to_f32(uint8_t b) { return fp8_ref_fnuz_to_f32(b, 2, 16); }

/* The largest finite value of an fp8 dtype (any of the four). */
FP8_REF_INLINE float fp8_ref_fp8_max(int32_t fp8_dtype) {
    switch (fp8_dtype) {
    case FP8_DTYPE_E5M2: return FP8_E5M2_MAX;
    case FP8_DTYPE_E4M3FNUZ: return FP8_E4M3FNUZ_MAX;
    case FP8_DTYPE_E5M2FNUZ: return FP8_E5M2FNUZ_MAX;
    default: return FP8_E4M3FN_MAX;
    }
}

/* Encodes one f32 to any of the four fp8 dtypes. */
FP8_REF_INLINE uint8_t fp8_ref_encode(int32_t fp8_dtype, float x) {
    switch (fp8_dtype) {
    case FP8_DTYPE_E5M2: return fp8_ref_e5m2_from_f32(x);
    case FP8_DTYPE_E4M3FNUZ: return fp8_ref_e4m3fnuz_from_f32(x);
    case FP8_DTYPE_E5M2FNUZ: return fp8_ref_e5m2fnuz_from_f32(x);
    default: return fp8_ref_e4m3fn_from_f32(x);
    }
}

/* float8_e4m3fn byte -> f32 (exact). */
FP8_REF_INLINE float fp8_ref_e4m3fn_to_f32(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t a = b & 0x7Fu;
    uint32_t bits;
    if (a == 0x7Fu)
        bits = 0x7FC00000u;
    else if (a >= 8u)
        bits = (a << 20) + (120u << 23);
    else
        bits = fp8_ref_f32_bits((float)a * 0.001953125f); /* subnormal: a * 2^-9 */
    return fp8_ref_f32_from_bits(bits | sign);
}

/* float8_e5m2 byte -> f32 (exact). */
FP8_REF_INLINE float fp8_ref_e5m2_to_f32(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t a = b & 0x7Fu;
    uint32_t bits;
    if (a > 0x7Cu)
        bits = 0x7FC00000u;
    else if (a == 0x7Cu)
        bits = 0x7F800000u;
    else if (a >= 4u)
        bits = (a << 21) + (112u << 23);
    else
        bits = fp8_ref_f32_bits((float)a * 1.52587890625e-05f); /* subnormal: a * 2^-16 */
    return fp8_ref_f32_from_bits(bits | sign);
}

/* Decodes one byte of any of the four fp8 dtypes (exact). */
FP8_REF_INLINE float fp8_ref_decode(int32_t fp8_dtype, uint8_t b) {
    switch (fp8_dtype) {
    case FP8_DTYPE_E5M2: return fp8_ref_e5m2_to_f32(b);
    case FP8_DTYPE_E4M3FNUZ: return fp8_ref_e4m3fnuz_to_f32(b);
    case FP8_DTYPE_E5M2FNUZ: return fp8_ref_e5m2fnuz_to_f32(b);
    default: return fp8_ref_e4m3fn_to_f32(b);
    }
}

/* torchao's amax_to_scale: f32(fp8_max / max(f64(amax), 1e-12)), clamped to
 * the float16 max in f64 when clamp_to_f16 != 0. A NaN amax gives that NaN
 * back, quieted (what x86's f64 divide does), on the CPU and the GPU alike. */
FP8_REF_INLINE float fp8_ref_scale_from_amax(float amax, int32_t fp8_dtype, int32_t clamp_to_f16) {
    if (amax != amax) return fp8_ref_f32_from_bits(fp8_ref_f32_bits(amax) | 0x400000u);
    double fp8_max = (double)fp8_ref_fp8_max(fp8_dtype);
    double a = (double)amax;
    if (a < 1e-12) a = 1e-12;
    double s = fp8_max / a;
    if (clamp_to_f16 && s > 65504.0) s = 65504.0;
    return (float)s;
}

/* 2^floor(log2(s)) for a finite positive normal s (clears the mantissa bits:
 * exact); zero, subnormals, inf, NaN and negatives are returned unchanged. */
FP8_REF_INLINE float fp8_ref_round_down_pow2(float s) {
    const uint32_t u = fp8_ref_f32_bits(s), e = u & 0x7f800000u;
    if ((u & 0x80000000u) != 0 || e == 0 || e == 0x7f800000u) return s;
    return fp8_ref_f32_from_bits(u & 0xff800000u);
}

/* One element of the binary ops (alg: FP8_BINARY_ADD, SUB, MUL, DIV, MAX,
 * MIN of fp8.h), shared by the CPU and CUDA kernels so both compute the same
 * thing: max/min as x86 maxps/minps (the second operand when either is NaN). */
FP8_REF_INLINE float fp8_ref_binary(int32_t alg, float x, float y) {
    switch (alg) {
        case FP8_BINARY_ADD: return x + y;
        case FP8_BINARY_SUB: return x - y;
        case FP8_BINARY_MUL: return x * y;
        case FP8_BINARY_DIV: return x / y;
        case FP8_BINARY_MAX: return x > y ? x : y;
        default: return x < y ? x : y; /* FP8_BINARY_MIN */
    }
}

#endif
