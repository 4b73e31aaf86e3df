/*
 * gemv_fp8.c — y (M, N) = x (M, K) @ decode(W)^T for an fp8 weight W (N, K) and
 * a small M (<= FP8_GEMV_MAX_M): the memory-bound decode step of fp8 inference
 * (docs/architecture.md, float8 inference). Not a GEMM in disguise: each weight
 * byte is read once, decoded to f32 in registers and used for every row of x;
 * the bound is the weight's bytes, half of bf16's. Large M goes to oneDNN
 * (TypeScript decides, src/float8/inference.ts).
 *
 * Scales (all are dequantize multipliers, value = fp8 * s):
 *   FP8_GEMV_SCALE_TENSOR: one s, applied to each output (acc * s);
 *   FP8_GEMV_SCALE_ROW:    s[n] per output feature, applied to each output;
 *   FP8_GEMV_SCALE_BLOCK:  s[n / br][k / bc] (row-major grid), applied to the decoded
 *                          weight inside the block (fp8 * s rounded to f32).
 * Paths: AVX-512F, AVX2+FMA and portable C, chosen like the cast kernels
 * (fp8_cpu_set_isa caps them). Results agree to f32 rounding between paths
 * (the order of the k sums differs), not bit for bit.
 * Weight codes are decoded exactly for finite values; NaN codes (0x7F/0xFF in
 * e4m3) are not expected in frozen weights and decode to +-480.
 */
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fp8_ref.h"
#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GEMV_X86 1
#endif

#define GEMV_MAX_M 16

typedef struct {
    const float *x; /* (M, K) f32 */
    int64_t M, K, N;
    const uint8_t *w; /* (N, K) fp8 */
    int e5m2;
    int32_t scale_mode;
    const float *scale;
    int64_t br, bc, nbc;
    float *acc; /* (M, N) f32 out */
} gemv_args;

/* ---- portable ------------------------------------------------------------ */

static inline float decode_one(uint8_t b, int e5m2) {
    if (e5m2) return fp8_ref_e5m2_to_f32(b);
    return (b & 0x7F) == 0x7F ? (b & 0x80 ? -480.0f : 480.0f) : fp8_ref_e4m3fn_to_f32(b);
}

static void gemv_rows_portable(const gemv_args *a, int64_t n0, int64_t n1) {
    float tab[256];
    for (int i = 0; i < 256; i++) tab[i] = decode_one((uint8_t)i, a->e5m2);
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *wr = a->w + n * a->K;
        float acc[GEMV_MAX_M] = {0};
        for (int64_t k0 = 0; k0 < a->K; k0 += a->bc) {
            const int64_t k1 = k0 + a->bc < a->K ? k0 + a->bc : a->K;
            const float s = a->scale_mode == FP8_GEMV_SCALE_BLOCK ? a->scale[(n / a->br) * a->nbc + k0 / a->bc] : 1.0f;
            for (int64_t k = k0; k < k1; k++) {
                const float wv = a->scale_mode == FP8_GEMV_SCALE_BLOCK ? tab[wr[k]] * s : tab[wr[k]];
                for (int64_t m = 0; m < a->M; m++) acc[m] += wv * a->x[m * a->K + k];
            }
        }
        for (int64_t m = 0; m < a->M; m++) a->acc[m * a->N + n] = acc[m];
    }
}

#ifdef GEMV_X86
/* ---- AVX-512 ------------------------------------------------------------- */

/* 16 fp8 bytes -> 16 f32: e5m2 is the high byte of an f16 (exact via vcvtph2ps);
 * e4m3: normals by integer rebias, subnormals (|code| < 8) as code * 2^-9. */
__attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))) static inline __m512 dec16(const uint8_t *p, int e5m2) {
    const __m128i b = _mm_loadu_si128((const __m128i *)p);
    if (e5m2) return _mm512_cvtph_ps(_mm256_slli_epi16(_mm256_cvtepu8_epi16(b), 8));
    const __m512i v = _mm512_cvtepu8_epi32(b);
    const __m512i mag = _mm512_and_si512(v, _mm512_set1_epi32(0x7F));
    const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x80)), 24);
    const __m512i nrm = _mm512_add_epi32(_mm512_slli_epi32(mag, 20), _mm512_set1_epi32(120 << 23));
    const __m512 sub = _mm512_mul_ps(_mm512_cvtepi32_ps(mag), _mm512_set1_ps(0.001953125f));
    const __mmask16 is_sub = _mm512_cmplt_epi32_mask(mag, _mm512_set1_epi32(8));
    const __m512 f = _mm512_mask_blend_ps(is_sub, _mm512_castsi512_ps(nrm), sub);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(f), sign));
}

/* NB output rows of W at once, MM rows of x: NB*MM accumulators of 16 lanes. */
#define DEF_AVX512(NB, MM)                                                                                   \
    __attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))) static void gemv512_##NB##_##MM(          \
        const gemv_args *a, int64_t n) {                                                                    \
        __m512 acc[NB][MM];                                                                                 \
        for (int j = 0; j < NB; j++)                                                                        \
            for (int m = 0; m < MM; m++) acc[j][m] = _mm512_setzero_ps();                                   \
        const int64_t K = a->K, K16 = K & ~(int64_t)15;                                                    \
        const int blk = a->scale_mode == FP8_GEMV_SCALE_BLOCK;                                              \
        const float *sr[NB];                                                                                \
        for (int j = 0; j < NB; j++) sr[j] = blk ? a->scale + ((n + j) / a->br) * a->nbc : NULL;            \
        for (int64_t k0 = 0, kb = 0; k0 < K16; k0 += a->bc, kb++) {                                         \
            const int64_t k1 = k0 + a->bc < K16 ? k0 + a->bc : K16;                                        \
            __m512 sv[NB];                                                                                   \
            for (int j = 0; j < NB; j++) sv[j] = _mm512_set1_ps(blk ? sr[j][kb] : 1.0f);                     \
            for (int64_t k = k0; k < k1; k += 16) {                                                         \
                __m512 wv[NB];                                                                               \
                for (int j = 0; j < NB; j++) {                                                              \
                    wv[j] = dec16(a->w + (n + j) * K + k, a->e5m2);                                          \
                    if (blk) wv[j] = _mm512_mul_ps(wv[j], sv[j]);                                            \
                }                                                                                           \
                for (int m = 0; m < MM; m++) {                                                              \
                    const __m512 xv = _mm512_loadu_ps(a->x + m * K + k);                                      \
                    for (int j = 0; j < NB; j++) acc[j][m] = _mm512_fmadd_ps(wv[j], xv, acc[j][m]);          \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
        for (int j = 0; j < NB; j++)                                                                        \
            for (int m = 0; m < MM; m++) {                                                                  \
                float s = _mm512_reduce_add_ps(acc[j][m]);                                                  \
                for (int64_t k = K16; k < K; k++) {                                                         \
                    float wv = decode_one(a->w[(n + j) * K + k], a->e5m2);                                  \
                    if (blk) wv *= a->scale[((n + j) / a->br) * a->nbc + k / a->bc];                        \
                    s += wv * a->x[m * K + k];                                                              \
                }                                                                                           \
                a->acc[m * a->N + n + j] = s;                                                               \
            }                                                                                               \
    }
DEF_AVX512(4, 1)
DEF_AVX512(4, 2)
DEF_AVX512(2, 4)
DEF_AVX512(1, 8)
DEF_AVX512(1, 16)

/* ---- AVX2 ---------------------------------------------------------------- */

__attribute__((target("avx2,f16c,fma"))) static inline __m256 dec8(const uint8_t *p, int e5m2) {
    const __m128i b = _mm_loadl_epi64((const __m128i *)p);
    if (e5m2) return _mm256_cvtph_ps(_mm_slli_epi16(_mm_cvtepu8_epi16(b), 8));
    const __m256i v = _mm256_cvtepu8_epi32(b);
    const __m256i mag = _mm256_and_si256(v, _mm256_set1_epi32(0x7F));
    const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x80)), 24);
    const __m256i nrm = _mm256_add_epi32(_mm256_slli_epi32(mag, 20), _mm256_set1_epi32(120 << 23));
    const __m256 sub = _mm256_mul_ps(_mm256_cvtepi32_ps(mag), _mm256_set1_ps(0.001953125f));
    const __m256 is_sub = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(8), mag));
    const __m256 f = _mm256_blendv_ps(_mm256_castsi256_ps(nrm), sub, is_sub);
    return _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(f), sign));
}

__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define DEF_AVX2(NB, MM)                                                                                     \
    __attribute__((target("avx2,f16c,fma"))) static void gemv256_##NB##_##MM(const gemv_args *a, int64_t n) { \
        __m256 acc[NB][MM];                                                                                 \
        for (int j = 0; j < NB; j++)                                                                        \
            for (int m = 0; m < MM; m++) acc[j][m] = _mm256_setzero_ps();                                   \
        const int64_t K = a->K, K8 = K & ~(int64_t)7;                                                    \
        const int blk = a->scale_mode == FP8_GEMV_SCALE_BLOCK;                                              \
        const float *sr[NB];                                                                                \
        for (int j = 0; j < NB; j++) sr[j] = blk ? a->scale + ((n + j) / a->br) * a->nbc : NULL;            \
        for (int64_t k0 = 0, kb = 0; k0 < K8; k0 += a->bc, kb++) {                                         \
            const int64_t k1 = k0 + a->bc < K8 ? k0 + a->bc : K8;                                        \
            __m256 sv[NB];                                                                                   \
            for (int j = 0; j < NB; j++) sv[j] = _mm256_set1_ps(blk ? sr[j][kb] : 1.0f);                     \
            for (int64_t k = k0; k < k1; k += 8) {                                                         \
                __m256 wv[NB];                                                                               \
                for (int j = 0; j < NB; j++) {                                                              \
                    wv[j] = dec8(a->w + (n + j) * K + k, a->e5m2);                                          \
                    if (blk) wv[j] = _mm256_mul_ps(wv[j], sv[j]);                                            \
                }                                                                                           \
                for (int m = 0; m < MM; m++) {                                                              \
                    const __m256 xv = _mm256_loadu_ps(a->x + m * K + k);                                      \
                    for (int j = 0; j < NB; j++) acc[j][m] = _mm256_fmadd_ps(wv[j], xv, acc[j][m]);          \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
        for (int j = 0; j < NB; j++)                                                                        \
            for (int m = 0; m < MM; m++) {                                                                  \
                float s = hsum8(acc[j][m]);                                                                 \
                for (int64_t k = K8; k < K; k++) {                                                          \
                    float wv = decode_one(a->w[(n + j) * K + k], a->e5m2);                                  \
                    if (blk) wv *= a->scale[((n + j) / a->br) * a->nbc + k / a->bc];                        \
                    s += wv * a->x[m * K + k];                                                              \
                }                                                                                           \
                a->acc[m * a->N + n + j] = s;                                                               \
            }                                                                                               \
    }
DEF_AVX2(4, 1)
DEF_AVX2(2, 2)
DEF_AVX2(2, 4)
DEF_AVX2(1, 8)

typedef void (*gemv_fn)(const gemv_args *, int64_t);

/* Runs rows [n0, n1) of W over row groups of x: (kernel, NB, MM) chosen for M. */
static void gemv_rows_vec(const gemv_args *a, int64_t n0, int64_t n1, int isa) {
    for (int64_t m0 = 0; m0 < a->M;) {
        const int64_t left = a->M - m0;
        gemv_fn f;
        int nb, mm;
        if (isa == 2) {
            if (left >= 16) f = gemv512_1_16, nb = 1, mm = 16;
            else if (left >= 8) f = gemv512_1_8, nb = 1, mm = 8;
            else if (left >= 4) f = gemv512_2_4, nb = 2, mm = 4;
            else if (left >= 2) f = gemv512_4_2, nb = 4, mm = 2;
            else f = gemv512_4_1, nb = 4, mm = 1;
        } else {
            if (left >= 8) f = gemv256_1_8, nb = 1, mm = 8;
            else if (left >= 4) f = gemv256_2_4, nb = 2, mm = 4;
            else if (left >= 2) f = gemv256_2_2, nb = 2, mm = 2;
            else f = gemv256_4_1, nb = 4, mm = 1;
        }
        gemv_args sub = *a;
        sub.x = a->x + m0 * a->K;
        sub.acc = a->acc + m0 * a->N;
        sub.M = mm;
        int64_t n = n0;
        for (; n + nb <= n1; n += nb) f(&sub, n);
        if (n < n1) {
            /* leftover rows: the portable loop */
            gemv_args p = sub;
            gemv_rows_portable(&p, n, n1);
        }
        m0 += mm;
    }
}
#endif

int32_t fp8_cpu_gemv_fp8w(void *y, int32_t y_dtype, const void *x, int32_t x_dtype, int64_t M, int64_t K,
                          const void *w_fp8, int32_t w_dtype, int64_t N, int32_t scale_mode, const float *scale,
                          int64_t block_rows, int64_t block_cols, const void *bias, int32_t bias_dtype) {
    static const char fn[] = "fp8_cpu_gemv_fp8w";
    FP8_REQUIRE_FP8(w_dtype, "w_dtype", fn);
    FP8_REQUIRE_HP(x_dtype, "x_dtype", fn);
    FP8_REQUIRE_HP(y_dtype, "y_dtype", fn);
    FP8_REQUIRE(M >= 1 && M <= GEMV_MAX_M, fn, "M must be in 1..%d (larger M: dequantize and use fp8_cpu_matmul), got %lld",
                GEMV_MAX_M, (long long)M);
    FP8_REQUIRE(K >= 1 && N >= 1, fn, "K and N must be >= 1, got K %lld N %lld", (long long)K, (long long)N);
    FP8_REQUIRE(scale_mode >= FP8_GEMV_SCALE_NONE && scale_mode <= FP8_GEMV_SCALE_BLOCK, fn,
                "scale_mode must be 0..3, got %d", (int)scale_mode);
    FP8_REQUIRE(scale_mode == FP8_GEMV_SCALE_NONE || scale != NULL, fn, "scale is NULL with scale_mode %d", (int)scale_mode);
    FP8_REQUIRE(scale_mode != FP8_GEMV_SCALE_BLOCK || (block_rows >= 1 && block_cols >= 1), fn,
                "block %lldx%lld must be at least 1x1", (long long)block_rows, (long long)block_cols);
    FP8_REQUIRE(!bias || fp8_is_float_hp(bias_dtype), fn, "bias_dtype must be float32 or bfloat16, got %s",
                fp8_dtype_name(bias_dtype));
    FP8_REQUIRE_PTR(y, fn);
    FP8_REQUIRE_PTR(x, fn);
    FP8_REQUIRE_PTR(w_fp8, fn);

    float xbuf_small[GEMV_MAX_M * 256];
    float *xf = M * K <= GEMV_MAX_M * 256 ? xbuf_small : NULL;
    float *acc = NULL;
    int32_t st = FP8_OK;
    if (!xf) st = fp8_alloc(M * K * 4, (void **)&xf);
    if (st == FP8_OK) st = fp8_alloc(M * N * 4, (void **)&acc);
    if (st != FP8_OK) {
        if (xf != xbuf_small) fp8_free(xf);
        return st;
    }
    if (x_dtype == FP8_DTYPE_F32)
        memcpy(xf, x, (size_t)(M * K) * 4);
    else
        fp8_cpu_convert(xf, FP8_DTYPE_F32, x, FP8_DTYPE_BF16, M * K);

    gemv_args a = {xf, M, K, N, (const uint8_t *)w_fp8, w_dtype == FP8_DTYPE_E5M2, scale_mode, scale,
                   scale_mode == FP8_GEMV_SCALE_BLOCK ? block_rows : 1,
                   scale_mode == FP8_GEMV_SCALE_BLOCK ? block_cols : K,
                   scale_mode == FP8_GEMV_SCALE_BLOCK ? (K + block_cols - 1) / block_cols : 1, acc};
    int32_t isa = 0;
    fp8_cpu_get_isa(&isa);
    /* Blocks of output rows per thread: multiples of 16, so vector row groups stay whole. */
#pragma omp parallel
    {
#ifdef _OPENMP
        const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
        const int64_t nt = 1, t = 0;
#endif
        const int64_t per = ((N + nt - 1) / nt + 15) & ~(int64_t)15;
        const int64_t n0 = t * per < N ? t * per : N, n1 = n0 + per < N ? n0 + per : N;
        if (n0 < n1) {
#ifdef GEMV_X86
            /* the vector paths take whole blocks of 16 columns per scale */
            if (isa >= 1 && (scale_mode != FP8_GEMV_SCALE_BLOCK || block_cols % 16 == 0))
                gemv_rows_vec(&a, n0, n1, isa);
            else
#endif
                gemv_rows_portable(&a, n0, n1);
        }
    }
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            float v = acc[m * N + n];
            if (scale_mode == FP8_GEMV_SCALE_TENSOR) v *= scale[0];
            else if (scale_mode == FP8_GEMV_SCALE_ROW) v *= scale[n];
            if (bias) v += fp8_load_hp(bias, bias_dtype, n);
            fp8_store_hp(y, y_dtype, m * N + n, v);
        }
    fp8_free(acc);
    if (xf != xbuf_small) fp8_free(xf);
    return FP8_OK;
}
