/*
 * block_cast.c — block-scaled fp8 casts on the CPU: 1×B / B×B blocks with f32
 * scales (DeepSeek-V3 / torchao's blockwise_fp8_training, B = 128) and MX
 * blocks with a shared e8m0 exponent (OCP MX v1.0, torchao's mx_formats).
 * See docs/architecture.md (block scaling).
 *
 * Every block runs through the per-ISA kernel table of cast_kernels.h (portable,
 * AVX2, AVX-512, chosen as fp8_cpu_set_isa caps it): amax as sign-cleared bits,
 * then the saturating round-to-nearest-even quantize of x * multiplier, so the
 * three ISAs agree bit for bit; the scale rules are scalar code below
 * (block_ref.h), shared with the tests' expectations through the C ABI.
 * Blocks at the right and bottom edges may be partial (a block is clipped to
 * the matrix); the references require divisible shapes and agree on those.
 * The argument checks are cast_checks.h's, shared with the CUDA twins
 * (libfp8/src/cuda/block_kernels.cu).
 */
#include <stdlib.h>

#include "block_ref.h"
#include "cast_checks.h"
#include "cast_kernels.h"
#include "fp8_ref.h"
#include "internal.h"

/* Run the block loops on one thread below this many elements. */
#define BLOCK_PARALLEL_MIN ((int64_t)1 << 16)
/* Decoding to bf16 goes through an f32 staging buffer of this many elements. */
#define BLOCK_STAGE 256

static const fp8_cast_kernels *block_kernels(void) {
    int32_t isa = 0;
    fp8_cpu_get_isa(&isa);
    switch (isa) {
    case 2: return &fp8_cast_kernels_avx512;
    case 1: return &fp8_cast_kernels_avx2;
    default: return &fp8_cast_kernels_portable;
    }
}

/* max |x| over src[0..n) as f32 (NaN wins, quieted), through the kernel table. */
static float span_amax(const fp8_cast_kernels *k, const void *src, int32_t src_dtype, int64_t n) {
    uint32_t m;
    if (src_dtype == FP8_DTYPE_F32)
        m = k->amax_f32_bits((const float *)src, n);
    else
        m = (uint32_t)k->amax_bf16_bits((const uint16_t *)src, n) << 16;
    return fp8_ref_f32_from_bits(m > 0x7F800000u ? 0x7FC00000u : m);
}

static void span_quantize(const fp8_cast_kernels *k, uint8_t *dst, const void *src, int32_t src_dtype,
                          int64_t n, float mult, int32_t fp8_dtype) {
    if (src_dtype == FP8_DTYPE_F32)
        k->quantize_f32(dst, (const float *)src, n, mult, fp8_dtype, 0);
    else
        k->quantize_bf16(dst, (const uint16_t *)src, n, mult, fp8_dtype, 0);
}

/* dst[0..n) <- round_to_dst(decode(src) * mult); the product is one f32
 * multiply per element, identical on every ISA. */
static void span_decode(const fp8_cast_kernels *k, void *dst, int32_t dst_dtype, const uint8_t *src,
                        int64_t n, int32_t fp8_dtype, float mult) {
    if (dst_dtype == FP8_DTYPE_F32) {
        float *d = (float *)dst;
        k->decode_f32(d, src, n, fp8_dtype, 1.0f, 0);
        for (int64_t i = 0; i < n; i++) d[i] *= mult;
        return;
    }
    float stage[BLOCK_STAGE];
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK_STAGE) {
        const int64_t len = n - i0 < BLOCK_STAGE ? n - i0 : BLOCK_STAGE;
        k->decode_f32(stage, src + i0, len, fp8_dtype, 1.0f, 0);
        for (int64_t i = 0; i < len; i++) stage[i] *= mult;
        k->f32_to_bf16((uint16_t *)dst + i0, stage, len);
    }
}

/* ---- f32-scaled blocks ------------------------------------------------- */

int32_t fp8_cpu_quantize_blockwise(void *dst_fp8, float *inv_scale, int32_t fp8_dtype, const void *src,
                                   int32_t src_dtype, int64_t rows, int64_t cols, int64_t block_rows,
                                   int64_t block_cols) {
    static const char fn[] = "fp8_cpu_quantize_blockwise";
    FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
    FP8_REQUIRE_HP(src_dtype, "src_dtype", fn);
    FP8_CHECK(fp8_check_block_dims(fn, rows, cols, block_rows, block_cols));
    const int64_t n = rows * cols;
    FP8_CHECK(fp8_check_block_ptrs(fn, "", n, dst_fp8, "dst_fp8", inv_scale, "inv_scale", src, "src"));
    if (n == 0) return FP8_OK;
    const fp8_cast_kernels *k = block_kernels();
    const int64_t es = fp8_dtype_size(src_dtype);
    const int64_t nbr = (rows + block_rows - 1) / block_rows, nbc = (cols + block_cols - 1) / block_cols;
#pragma omp parallel for schedule(static) if (n >= BLOCK_PARALLEL_MIN)
    for (int64_t b = 0; b < nbr * nbc; b++) {
        const int64_t r0 = (b / nbc) * block_rows, c0 = (b % nbc) * block_cols;
        const int64_t r1 = r0 + block_rows < rows ? r0 + block_rows : rows;
        const int64_t len = c0 + block_cols < cols ? block_cols : cols - c0;
        float amax = 0.0f;
        for (int64_t r = r0; r < r1; r++) {
            const float a = span_amax(k, (const uint8_t *)src + (r * cols + c0) * es, src_dtype, len);
            amax = fp8_block_amax_merge(amax, a);
        }
        const float scale = fp8_ref_scale_from_amax(amax, fp8_dtype, 0);
        inv_scale[b] = 1.0f / scale;
        for (int64_t r = r0; r < r1; r++) {
            uint8_t *d = (uint8_t *)dst_fp8 + r * cols + c0;
            const uint8_t *s = (const uint8_t *)src + (r * cols + c0) * es;
            if (amax != amax) /* NaN scale: NaN codes, the same on every ISA */
                for (int64_t i = 0; i < len; i++) d[i] = fp8_mx_nan_block_code(fp8_load_hp(s, src_dtype, i));
            else
                span_quantize(k, d, s, src_dtype, len, scale, fp8_dtype);
        }
    }
    return FP8_OK;
}

int32_t fp8_cpu_dequantize_blockwise(void *dst, int32_t dst_dtype, const void *src_fp8, int32_t fp8_dtype,
                                     const float *inv_scale, int64_t rows, int64_t cols, int64_t block_rows,
                                     int64_t block_cols) {
    static const char fn[] = "fp8_cpu_dequantize_blockwise";
    FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
    FP8_REQUIRE_HP(dst_dtype, "dst_dtype", fn);
    FP8_CHECK(fp8_check_block_dims(fn, rows, cols, block_rows, block_cols));
    const int64_t n = rows * cols;
    FP8_CHECK(fp8_check_block_ptrs(fn, "", n, dst, "dst", inv_scale, "inv_scale", src_fp8, "src_fp8"));
    if (n == 0) return FP8_OK;
    const fp8_cast_kernels *k = block_kernels();
    const int64_t es = fp8_dtype_size(dst_dtype);
    const int64_t nbc = (cols + block_cols - 1) / block_cols;
#pragma omp parallel for schedule(static) if (n >= BLOCK_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *srow = inv_scale + (r / block_rows) * nbc;
        for (int64_t cb = 0; cb < nbc; cb++) {
            const int64_t c0 = cb * block_cols, len = c0 + block_cols < cols ? block_cols : cols - c0;
            span_decode(k, (uint8_t *)dst + (r * cols + c0) * es, dst_dtype,
                        (const uint8_t *)src_fp8 + r * cols + c0, len, fp8_dtype, srow[cb]);
        }
    }
    return FP8_OK;
}

/* ---- MX blocks (e8m0 shared exponent) ------------------------------------ */

int32_t fp8_cpu_quantize_mx(void *dst_fp8, uint8_t *scale_e8m0, int32_t fp8_dtype, const void *src,
                            int32_t src_dtype, int64_t rows, int64_t cols, int64_t block, int32_t mode) {
    static const char fn[] = "fp8_cpu_quantize_mx";
    FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
    FP8_REQUIRE_HP(src_dtype, "src_dtype", fn);
    FP8_CHECK(fp8_check_mx_mode(fn, mode));
    FP8_CHECK(fp8_check_block_dims(fn, rows, cols, 1, block));
    const int64_t n = rows * cols;
    FP8_CHECK(fp8_check_block_ptrs(fn, "", n, dst_fp8, "dst_fp8", scale_e8m0, "scale_e8m0", src, "src"));
    if (n == 0) return FP8_OK;
    const fp8_cast_kernels *k = block_kernels();
    const int64_t es = fp8_dtype_size(src_dtype);
    const int64_t nbc = (cols + block - 1) / block;
#pragma omp parallel for schedule(static) if (n >= BLOCK_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t cb = 0; cb < nbc; cb++) {
            const int64_t c0 = cb * block, len = c0 + block < cols ? block : cols - c0;
            const uint8_t *s = (const uint8_t *)src + (r * cols + c0) * es;
            uint8_t *d = (uint8_t *)dst_fp8 + r * cols + c0;
            const float amax = span_amax(k, s, src_dtype, len);
            const uint8_t e = fp8_mx_scale_from_amax(amax, fp8_dtype, mode);
            scale_e8m0[r * nbc + cb] = e;
            if (e == FP8_E8M0_NAN) {
                for (int64_t i = 0; i < len; i++)
                    d[i] = fp8_mx_nan_block_code(fp8_load_hp(s, src_dtype, i));
            } else {
                span_quantize(k, d, s, src_dtype, len, fp8_e8m0_reciprocal(e), fp8_dtype);
            }
        }
    }
    return FP8_OK;
}

int32_t fp8_cpu_dequantize_mx(void *dst, int32_t dst_dtype, const void *src_fp8, int32_t fp8_dtype,
                              const uint8_t *scale_e8m0, int64_t rows, int64_t cols, int64_t block) {
    static const char fn[] = "fp8_cpu_dequantize_mx";
    FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
    FP8_REQUIRE_HP(dst_dtype, "dst_dtype", fn);
    FP8_CHECK(fp8_check_block_dims(fn, rows, cols, 1, block));
    const int64_t n = rows * cols;
    FP8_CHECK(fp8_check_block_ptrs(fn, "", n, dst, "dst", scale_e8m0, "scale_e8m0", src_fp8, "src_fp8"));
    if (n == 0) return FP8_OK;
    const fp8_cast_kernels *k = block_kernels();
    const int64_t es = fp8_dtype_size(dst_dtype);
    const int64_t nbc = (cols + block - 1) / block;
#pragma omp parallel for schedule(static) if (n >= BLOCK_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t cb = 0; cb < nbc; cb++) {
            const int64_t c0 = cb * block, len = c0 + block < cols ? block : cols - c0;
            span_decode(k, (uint8_t *)dst + (r * cols + c0) * es, dst_dtype,
                        (const uint8_t *)src_fp8 + r * cols + c0, len, fp8_dtype,
                        fp8_e8m0_to_f32(scale_e8m0[r * nbc + cb]));
        }
    }
    return FP8_OK;
}

int32_t fp8_cpu_mx_scale(uint8_t *out, float amax, int32_t fp8_dtype, int32_t mode) {
    static const char fn[] = "fp8_cpu_mx_scale";
    FP8_REQUIRE_PTR(out, fn);
    FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
    FP8_CHECK(fp8_check_mx_mode(fn, mode));
    *out = fp8_mx_scale_from_amax(amax, fp8_dtype, mode);
    return FP8_OK;
}

/* Whether this CPU multiplies bf16 natively (AVX-512 BF16: vdpbf16ps, which oneDNN's bf16 GEMM
 * uses; AMX CPUs have it too): where it does, an exact bf16 decode of MX operands lets the
 * block-scaled Linear run oneDNN's bf16 GEMM instead of the f32 one (src/float8/block_scaling.ts). */
int32_t fp8_cpu_bf16_native(int32_t *out) {
    FP8_REQUIRE_PTR(out, "fp8_cpu_bf16_native");
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    *out = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
#else
    *out = 0;
#endif
    return FP8_OK;
}
