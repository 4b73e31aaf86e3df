/*
 * cast_kernels.h — the per-ISA fp8 kernel table behind libfp8/src/cpu/cast.c.
 * Three implementations with identical results: portable C (cast.c), AVX2
 * (cast_avx2.c) and AVX-512 F/BW/VL (cast_avx512.c). Kernels run on one
 * contiguous range on the calling thread; cast.c validates arguments, splits
 * large ranges over OpenMP threads and picks the table at run time.
 * `fp8_dtype` is any of the four fp8 dtypes (already validated).
 */
#ifndef FP8_CAST_KERNELS_H
#define FP8_CAST_KERNELS_H

#include <stdint.h>

#include "fp8.h"

typedef struct {
    /* dst (n) fp8 <- sat_rne(src (n) * scale); stream != 0 asks for
     * non-temporal stores (outputs too large to stay in cache) */
    void (*quantize_f32)(uint8_t *dst, const float *src, int64_t n, float scale, int32_t fp8_dtype,
                         int stream);
    void (*quantize_bf16)(uint8_t *dst, const uint16_t *src, int64_t n, float scale,
                          int32_t fp8_dtype, int stream);
    /* dst (n) <- decode(src (n)), divided by scale when divide != 0 */
    void (*decode_f32)(float *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype, float scale,
                       int divide);
    void (*decode_bf16)(uint16_t *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype,
                        float scale, int divide);
    void (*f32_to_bf16)(uint16_t *dst, const float *src, int64_t n);
    void (*bf16_to_f32)(float *dst, const uint16_t *src, int64_t n);
    /* max over |src| as bits (integer max of the sign-cleared bits: NaN wins) */
    uint32_t (*amax_f32_bits)(const float *src, int64_t n);
    uint16_t (*amax_bf16_bits)(const uint16_t *src, int64_t n);
    /* counts[0..2] += zeros, saturated (+-max), NaN over src (n) */
    void (*stats)(int64_t counts[3], const uint8_t *src, int64_t n, int32_t fp8_dtype);
} fp8_cast_kernels;

/* The kernels' format index `fmt`: 0 e4m3fn, 1 e5m2, 2 e4m3fnuz, 3 e5m2fnuz.
 * Bit 0 is "two mantissa bits" (the e5m2 layout), bit 1 is "fnuz" (no inf, no
 * negative zero, NaN only 0x80). Kernels take it as a compile-time constant
 * where they specialise, so 0 and 1 keep meaning e4m3fn and e5m2. */
static inline int fp8_kernel_fmt(int32_t fp8_dtype) {
    switch (fp8_dtype) {
    case FP8_DTYPE_E5M2: return 1;
    case FP8_DTYPE_E4M3FNUZ: return 2;
    case FP8_DTYPE_E5M2FNUZ: return 3;
    default: return 0; /* FP8_DTYPE_E4M3FN */
    }
}
#define FP8_FMT_E5M2(fmt) ((fmt) & 1)
#define FP8_FMT_FNUZ(fmt) (((fmt) >> 1) & 1)
/* exponent bias: 7, 15 (OCP) and 8, 16 (fnuz) */
#define FP8_FMT_BIAS(fmt) ((FP8_FMT_E5M2(fmt) ? 15 : 7) + FP8_FMT_FNUZ(fmt))

/* The constants of the branch-free encoder that every ISA's quantize uses
 * (cast.c: encode_branchless, cast_avx2.c: encode8, cast_avx512.c: encode16),
 * by format index: the f32 -> fp8 mantissa shift; the f32 bits of the format's
 * max (448, 57344, 240, 57344) and smallest normal (2^(1 - bias)); a magic float
 * whose ulp is the smallest subnormal (2^(1 - bias - mantissa bits)), so that
 * adding it rounds a subnormal to nearest even; and the exponent rebias folded
 * with half an ulp minus one, which makes round-to-nearest-even an integer add. */
#define FP8_ENC_SHIFT(fmt) (FP8_FMT_E5M2(fmt) ? 21 : 20)
#define FP8_ENC_MAX_BITS(fmt) \
    (FP8_FMT_E5M2(fmt) ? 0x47600000u : FP8_FMT_FNUZ(fmt) ? 0x43700000u : 0x43E00000u)
#define FP8_ENC_NORMAL_MIN(fmt) ((uint32_t)(127 + 1 - FP8_FMT_BIAS(fmt)) << 23)
#define FP8_ENC_MAGIC(fmt) ((uint32_t)(151 - FP8_FMT_BIAS(fmt) - (FP8_FMT_E5M2(fmt) ? 2 : 3)) << 23)
#define FP8_ENC_REBIAS_HALF(fmt) \
    (((uint32_t)(FP8_FMT_BIAS(fmt) - 127) << 23) + (FP8_FMT_E5M2(fmt) ? 0xFFFFFu : 0x7FFFFu))
/* decode: f32 exponent offset of a normal code, and the smallest subnormal */
#define FP8_DEC_REBIAS(fmt) ((uint32_t)(127 - FP8_FMT_BIAS(fmt)) << 23)

/* Every fp8 code's value, by format index (fp8_kernel_fmt) and byte: as f32
 * and as bf16 bits (every fp8 value is exact in bf16; NaN is 0x7FC0 with the
 * code's sign, fnuz 0x80 is 0x7FC0). Built once from fp8_ref; shared by the
 * kernels' table decodes. */
typedef struct {
    float f32[4][256];
    uint16_t bf16[4][256];
} fp8_decode_tables;
const fp8_decode_tables *fp8_cast_decode_tables(void);

extern const fp8_cast_kernels fp8_cast_kernels_portable;
extern const fp8_cast_kernels fp8_cast_kernels_avx2;
extern const fp8_cast_kernels fp8_cast_kernels_avx512;

#endif
