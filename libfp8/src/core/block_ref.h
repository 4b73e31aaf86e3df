/*
 * block_ref.h — scalar rules of block scaling (header-only, C / C++ / CUDA),
 * written from the OCP Microscaling Formats (MX) v1.0 spec and torchao's
 * prototype/mx_formats and prototype/blockwise_fp8_training numerics
 * (docs/architecture.md, block scaling). Every block kernel (CPU, CUDA) takes
 * its scales from these functions, so they agree bit for bit.
 *
 * f32 blocks (1x128, 128x128): scale = f32(fp8_max / max(f64(amax), 1e-12))
 *   (fp8_ref_scale_from_amax without the f16 clamp), data = sat_rne(x * scale),
 *   and the stored scale is its f32 reciprocal 1/scale (torchao stores the
 *   reciprocal, which the GEMM multiplies back in).
 * MX blocks: the e8m0 byte E encodes 2^(E-127); 0xFF is NaN.
 *   FLOOR (OCP spec section 6.3, torchao's default): E = clamp(floor(log2(amax))
 *     - emax_elem, -127, 128) + 127, where floor(log2) is the f32 exponent field
 *     (-127 for zero and f32 subnormals) and emax_elem is 8 for e4m3 (448 =
 *     1.75 * 2^8) and 15 for e5m2; a non-finite amax gives 0xFF.
 *   RCEIL (torchao's RCEIL, cuBLAS' block quantisation): d = f32(amax * f32(1/fp8_max)),
 *     E = d's f32 exponent field rounded up when any mantissa bit is set (for an
 *     f32 subnormal d: when d > 2^-127); a non-finite d gives 0xFF.
 *   data = sat_rne(x * 2^(127-E)), with 2^(127-E) the e8m0 reciprocal (E = 254
 *     gives the f32 subnormal 2^-127, E = 0 gives 2^127); a 0xFF block writes
 *     NaN codes: 0x7F, or the element's own sign on a NaN element (what x * NaN
 *     gives on x86).
 *   decode = f32(fp8) * 2^(E-127) (E = 0 is the f32 subnormal 2^-127).
 * A NaN amax in an f32 block writes the same NaN codes as a 0xFF MX block.
 */
#ifndef FP8_BLOCK_REF_H
#define FP8_BLOCK_REF_H

#include <stdint.h>

#include "fp8_ref.h"

#if defined(__CUDACC__)
#define FP8_BLOCK_INLINE static inline __host__ __device__
#else
#define FP8_BLOCK_INLINE static inline
#endif

#define FP8_E8M0_NAN 0xFFu

/* max of two block amaxes (non-negative f32 or NaN): NaN wins, as the kernels' bit max. */
FP8_BLOCK_INLINE float fp8_block_amax_merge(float a, float b) {
    const uint32_t x = fp8_ref_f32_bits(a) & 0x7FFFFFFFu, y = fp8_ref_f32_bits(b) & 0x7FFFFFFFu;
    return fp8_ref_f32_from_bits(x > y ? x : y);
}

/* The element type's largest power of two, as an exponent (emax of OCP MX). */
FP8_BLOCK_INLINE int32_t fp8_mx_emax_elem(int32_t fp8_dtype) { return fp8_dtype == FP8_DTYPE_E5M2 ? 15 : 8; }

FP8_BLOCK_INLINE uint8_t fp8_mx_scale_from_amax(float amax, int32_t fp8_dtype, int32_t mode) {
    if (mode == FP8_MX_RCEIL) {
        const float inv_max = fp8_dtype == FP8_DTYPE_E5M2 ? (float)(1.0 / 57344.0) : (float)(1.0 / 448.0);
        const uint32_t u = fp8_ref_f32_bits(amax * inv_max) & 0x7FFFFFFFu;
        if (u >= 0x7F800000u) return FP8_E8M0_NAN;
        const uint32_t e = u >> 23, m = u & 0x7FFFFFu;
        const uint32_t up = e == 0 ? (m > 0x400000u) : (m != 0);
        return (uint8_t)(e + up);
    }
    const uint32_t u = fp8_ref_f32_bits(amax) & 0x7FFFFFFFu;
    if (u >= 0x7F800000u) return FP8_E8M0_NAN;
    int32_t unb = (int32_t)(u >> 23) - 127 - fp8_mx_emax_elem(fp8_dtype);
    if (unb < -127) unb = -127;
    if (unb > 128) unb = 128;
    return (uint8_t)(unb + 127);
}

/* 2^(E-127) as f32 (E = 0: the subnormal 2^-127; 0xFF: NaN). */
FP8_BLOCK_INLINE float fp8_e8m0_to_f32(uint8_t e) {
    if (e == FP8_E8M0_NAN) return fp8_ref_f32_from_bits(0x7FC00000u);
    return fp8_ref_f32_from_bits(e == 0 ? 0x00400000u : (uint32_t)e << 23);
}

/* 2^(127-E) as f32, the quantize multiplier (E = 254: 2^-127; 0xFF: NaN). */
FP8_BLOCK_INLINE float fp8_e8m0_reciprocal(uint8_t e) {
    const uint8_t r = (uint8_t)(254u - e);
    if (e == FP8_E8M0_NAN) return fp8_ref_f32_from_bits(0x7FC00000u);
    return fp8_ref_f32_from_bits(r == 0 ? 0x00400000u : (uint32_t)r << 23);
}

/* The fp8 code (e4m3fn and e5m2 alike: 0x7F is NaN in both) of x in a block whose scale is NaN. */
FP8_BLOCK_INLINE uint8_t fp8_mx_nan_block_code(float x) {
    const uint32_t u = fp8_ref_f32_bits(x);
    return (uint8_t)(0x7Fu | ((u & 0x7FFFFFFFu) > 0x7F800000u ? (u >> 24) & 0x80u : 0u));
}

#endif
