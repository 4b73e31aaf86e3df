/*
 * cast_kernels.h — the per-ISA fp8 kernel table behind libfp8/src/cpu/cast.c.
 * Three implementations with identical results: portable C (cast.c), AVX2
 * (cast_avx2.c) and AVX-512 F/BW/VL (cast_avx512.c). Kernels run on one
 * contiguous range on the calling thread; cast.c validates arguments, splits
 * large ranges over OpenMP threads and picks the table at run time.
 * `fp8_dtype` is FP8_DTYPE_E4M3FN or FP8_DTYPE_E5M2 (already validated).
 */
#ifndef FP8_CAST_KERNELS_H
#define FP8_CAST_KERNELS_H

#include <stdint.h>

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

/* The constants of the branch-free encoder that every ISA's quantize uses
 * (cast.c: encode_branchless, cast_avx2.c: encode8, cast_avx512.c: encode16):
 * for e5m2 (1) or e4m3fn (0), the f32 -> fp8 mantissa shift; the f32 bits of
 * the format's max (57344, 448) and smallest normal (2^-14, 2^-6); a magic
 * float whose ulp is the smallest subnormal (2^-16, 2^-9), so that adding it
 * rounds a subnormal to nearest even; and the exponent rebias folded with
 * half an ulp minus one, which makes round-to-nearest-even an integer add. */
#define FP8_ENC_SHIFT(e5m2) ((e5m2) ? 21 : 20)
#define FP8_ENC_MAX_BITS(e5m2) ((e5m2) ? 0x47600000u : 0x43E00000u)
#define FP8_ENC_NORMAL_MIN(e5m2) ((e5m2) ? 113u << 23 : 121u << 23)
#define FP8_ENC_MAGIC(e5m2) ((e5m2) ? 134u << 23 : 141u << 23)
#define FP8_ENC_REBIAS_HALF(e5m2) \
    ((e5m2) ? ((uint32_t)(15 - 127) << 23) + 0xFFFFFu : ((uint32_t)(7 - 127) << 23) + 0x7FFFFu)

/* Every fp8 code's value, by format (index 0 e4m3fn, 1 e5m2) and byte: as f32
 * and as bf16 bits (every fp8 value is exact in bf16; NaN is 0x7FC0 with the
 * code's sign). Built once from fp8_ref; shared by the kernels' table decodes. */
typedef struct {
    float f32[2][256];
    uint16_t bf16[2][256];
} fp8_decode_tables;
const fp8_decode_tables *fp8_cast_decode_tables(void);

extern const fp8_cast_kernels fp8_cast_kernels_portable;
extern const fp8_cast_kernels fp8_cast_kernels_avx2;
extern const fp8_cast_kernels fp8_cast_kernels_avx512;

#endif
