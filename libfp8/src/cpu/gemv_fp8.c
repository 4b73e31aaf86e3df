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
 * Paths: AVX-512 BF16 for bf16 x (weights decoded to bf16, vdpbf16ps; from 4 rows of x with
 * AVX-512 VBMI, 16 weight rows transposed into the vector lanes, gemvt_*), AVX-512 (F/BW/VL), AVX2+F16C+FMA and portable C, chosen like the cast kernels
 * (fp8_cpu_set_isa caps them). Results agree to f32 rounding between paths
 * (the order of the k sums differs), not bit for bit.
 * Weight codes are decoded exactly for finite values; NaN codes (0x7F/0xFF in
 * e4m3) are not expected in frozen weights: the f32 paths decode them to +-480 (their
 * vector decode goes through f16, DEC_FACTOR), the bf16 path (a table of exact bf16
 * values, two word permutes per 32 codes) to NaN.
 */
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cast_kernels.h"
#include "fp8_ref.h"
#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GEMV_X86 1
#endif

#define GEMV_MAX_M 16
/* rows of x from which bf16 inputs take the transposed kernels (gemvt_*) */
#define GEMV_T_MIN_M 4

typedef struct {
    const float *x; /* (M, K) f32 */
    int64_t M, K, N;
    const uint8_t *w; /* (N, K) fp8 */
    int e5m2;
    int32_t scale_mode;
    const float *scale;
    int64_t br, bc, nbc;
    float *acc; /* (M, N) f32 out */
    const float *xp; /* vector paths: the x tile packed as [k / W][m][W] */
    const uint16_t *xb;  /* bf16 path: x (M, K) as given */
    const uint16_t *xpb; /* bf16 path: the x tile packed as [k / 32][m][32] */
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
/* Vector decode, up to a power of two: e5m2 is the high byte of an f16; an e4m3 magnitude
 * shifted left by 7 is an f16 worth 2^-8 of the e4m3 value (subnormals included), so
 * vcvtph2ps decodes both exactly and the factor 2^8 joins the scale (exact). */
#define DEC_FACTOR(e5m2) ((e5m2) ? 1.0f : 256.0f)
/* Columns of x per tile: an x tile of MM rows stays in L1 (32 KiB) while every weight row
 * of the thread's range streams past it. */
#define GEMV_TILE_BYTES 32768

__attribute__((target("avx2,f16c"))) static inline __m256i f16_bits16(__m256i v, int e5m2) {
    if (e5m2) return _mm256_slli_epi16(v, 8);
    return _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi16(v, 7), _mm256_set1_epi16(0x3F80)),
                           _mm256_and_si256(_mm256_slli_epi16(v, 8), _mm256_set1_epi16((short)0x8000)));
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c,fma"))) static inline __m512 dec16(const uint8_t *p, int e5m2) {
    return _mm512_cvtph_ps(f16_bits16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p)), e5m2));
}

__attribute__((target("sse4.1,f16c"))) static inline __m128i f16_bits8(__m128i v, int e5m2) {
    if (e5m2) return _mm_slli_epi16(v, 8);
    return _mm_or_si128(_mm_and_si128(_mm_slli_epi16(v, 7), _mm_set1_epi16(0x3F80)),
                        _mm_and_si128(_mm_slli_epi16(v, 8), _mm_set1_epi16((short)0x8000)));
}

__attribute__((target("avx2,f16c,fma"))) static inline __m256 dec8(const uint8_t *p, int e5m2) {
    return _mm256_cvtph_ps(f16_bits8(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p)), e5m2));
}

__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One kernel: NB weight rows (n .. n+NB-1) times MM rows of x over columns [k0, k1), k0 a
 * multiple of the vector width (and of the scale block), k1 <= K; the sums are written
 * (first) or added into acc. */
#define DEF_GEMV(NAME, TARGET, VT, W, DEC, SET1, MUL, FMA, LOAD, ZERO, HSUM, NB, MM)                      \
    __attribute__((target(TARGET))) static void NAME##_##NB##_##MM(const gemv_args *a, int64_t n,        \
                                                                   int64_t k0, int64_t k1, int first) {   \
        VT acc[NB][MM];                                                                                  \
        _Pragma("GCC unroll 16")                                                                         \
        for (int j = 0; j < NB; j++)                                                                     \
            _Pragma("GCC unroll 16")                                                                     \
            for (int m = 0; m < MM; m++) acc[j][m] = ZERO();                                             \
        const int64_t K = a->K, kv = k0 + ((k1 - k0) & ~(int64_t)(W - 1));                               \
        const int blk = a->scale_mode == FP8_GEMV_SCALE_BLOCK;                                           \
        const float fac = DEC_FACTOR(a->e5m2);                                                           \
        const float *sr[NB];                                                                             \
        _Pragma("GCC unroll 16")                                                                         \
        for (int j = 0; j < NB; j++) sr[j] = blk ? a->scale + ((n + j) / a->br) * a->nbc : NULL;         \
        for (int64_t kb0 = k0; kb0 < kv; kb0 += a->bc) {                                                 \
            const int64_t kb1 = kb0 + a->bc < kv ? kb0 + a->bc : kv;                                     \
            VT sv[NB];                                                                                   \
            _Pragma("GCC unroll 16")                                                                     \
            for (int j = 0; j < NB; j++) sv[j] = SET1(blk ? sr[j][kb0 / a->bc] * fac : 1.0f);           \
            for (int64_t k = kb0; k < kb1; k += W) {                                                     \
                VT wv[NB];                                                                               \
                _Pragma("GCC unroll 16")                                                                 \
                for (int j = 0; j < NB; j++) {                                                           \
                    wv[j] = DEC(a->w + (n + j) * K + k, a->e5m2);                                        \
                    if (blk) wv[j] = MUL(wv[j], sv[j]);                                                  \
                }                                                                                        \
                _Pragma("GCC unroll 16")                                                                 \
                for (int m = 0; m < MM; m++) {                                                           \
                    const VT xv = LOAD(a->xp + ((k - k0) / W * MM + m) * W);                             \
                    _Pragma("GCC unroll 16")                                                             \
                    for (int j = 0; j < NB; j++) acc[j][m] = FMA(wv[j], xv, acc[j][m]);                  \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
        _Pragma("GCC unroll 16")                                                                         \
        for (int j = 0; j < NB; j++)                                                                     \
            _Pragma("GCC unroll 16")                                                                     \
            for (int m = 0; m < MM; m++) {                                                               \
                float s = HSUM(acc[j][m]) * (blk ? 1.0f : fac);                                          \
                for (int64_t k = kv; k < k1; k++) {                                                      \
                    float wv = decode_one(a->w[(n + j) * K + k], a->e5m2);                               \
                    if (blk) wv *= sr[j][k / a->bc];                                                     \
                    s += wv * a->x[m * K + k];                                                           \
                }                                                                                        \
                float *o = a->acc + m * a->N + n + j;                                                    \
                *o = first ? s : *o + s;                                                                 \
            }                                                                                            \
    }

#define T512 "avx512f,avx512bw,avx512vl,avx2,f16c,fma"
#define DEF512(NB, MM) DEF_GEMV(gemv512, T512, __m512, 16, dec16, _mm512_set1_ps, _mm512_mul_ps, _mm512_fmadd_ps, \
                                _mm512_loadu_ps, _mm512_setzero_ps, _mm512_reduce_add_ps, NB, MM)
#define T256 "avx2,f16c,fma"
#define DEF256(NB, MM) DEF_GEMV(gemv256, T256, __m256, 8, dec8, _mm256_set1_ps, _mm256_mul_ps, _mm256_fmadd_ps, \
                                _mm256_loadu_ps, _mm256_setzero_ps, hsum8, NB, MM)
DEF512(4, 1)
DEF512(1, 1)
DEF512(4, 2)
DEF512(1, 2)
DEF512(2, 4)
DEF512(1, 4)
DEF512(1, 8)
DEF512(1, 16)
DEF256(4, 1)
DEF256(1, 1)
DEF256(2, 2)
DEF256(1, 2)
DEF256(2, 4)
DEF256(1, 4)
DEF256(1, 8)

typedef void (*gemv_fn)(const gemv_args *, int64_t, int64_t, int64_t, int);

/* A per-thread buffer of at least n floats for packed x tiles (grown on demand, kept). */
static float *fp8_tile_buffer(int64_t n) {
    static _Thread_local float *buf = NULL;
    static _Thread_local int64_t cap = 0;
    if (n > cap) {
        free(buf);
        buf = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64));
        cap = buf ? n : 0;
    }
    return buf;
}

/* ---- AVX-512 BF16: bf16 inputs, weights decoded to bf16 (exact), vdpbf16ps ----------------
 * Every fp8 value is exact in bf16, and vdpbf16ps multiplies bf16
 * pairs exactly and sums in f32: the f32 sum of the same products, in another order, at half
 * the instructions of f32 FMAs. Used for bf16 x with TENSOR / ROW / NONE scales (block scales
 * multiply the weight first, which bf16 cannot hold exactly; those take the f32 kernels). */
#define TBF "avx512f,avx512bw,avx512vl,avx512bf16,avx2,f16c,fma"

/* 32 codes -> their exact bf16 values by table: two word permutes over the 128 magnitudes
 * (index bits 5:0, bit 6 picks the half), then the sign (the table of cast_kernels.h). */
__attribute__((target(TBF))) static inline __m512bh lut32bf(const uint8_t *p, __m512i t0, __m512i t1, __m512i t2, __m512i t3) {
    const __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p));
    const __m512i lo = _mm512_permutex2var_epi16(t0, b, t1), hi = _mm512_permutex2var_epi16(t2, b, t3);
    const __m512i mag = _mm512_mask_blend_epi16(_mm512_test_epi16_mask(b, _mm512_set1_epi16(0x40)), lo, hi);
    return (__m512bh)_mm512_or_si512(mag, _mm512_slli_epi16(_mm512_and_si512(b, _mm512_set1_epi16(0x80)), 8));
}

#define DEF_BF16(NB, MM)                                                                                 \
    __attribute__((target(TBF))) static void gemvbf_##NB##_##MM(const gemv_args *a, int64_t n, int64_t k0, \
                                                               int64_t k1, int first) {                  \
        __m512 acc[NB][MM];                                                                              \
        _Pragma("GCC unroll 16") for (int j = 0; j < NB; j++)                                            \
            _Pragma("GCC unroll 16") for (int m = 0; m < MM; m++) acc[j][m] = _mm512_setzero_ps();       \
        const int64_t K = a->K, kv = k0 + ((k1 - k0) & ~(int64_t)31);                                     \
        const uint16_t *tb = fp8_cast_decode_tables()->bf16[a->e5m2];                                    \
        const __m512i t0 = _mm512_loadu_si512(tb), t1 = _mm512_loadu_si512(tb + 32);                     \
        const __m512i t2 = _mm512_loadu_si512(tb + 64), t3 = _mm512_loadu_si512(tb + 96);                \
        for (int64_t k = k0; k < kv; k += 32) {                                                          \
            __m512bh wv[NB];                                                                             \
            _Pragma("GCC unroll 16") for (int j = 0; j < NB; j++) wv[j] = lut32bf(a->w + (n + j) * K + k, t0, t1, t2, t3); \
            _Pragma("GCC unroll 16") for (int m = 0; m < MM; m++) {                                      \
                const __m512bh xv = (__m512bh)_mm512_loadu_si512(a->xpb + ((k - k0) / 32 * MM + m) * 32); \
                _Pragma("GCC unroll 16") for (int j = 0; j < NB; j++) acc[j][m] = _mm512_dpbf16_ps(acc[j][m], wv[j], xv); \
            }                                                                                            \
        }                                                                                                \
        for (int j = 0; j < NB; j++)                                                                     \
            for (int m = 0; m < MM; m++) {                                                               \
                float s = _mm512_reduce_add_ps(acc[j][m]);                                               \
                for (int64_t k = kv; k < k1; k++)                                                        \
                    s += decode_one(a->w[(n + j) * K + k], a->e5m2) * fp8_bf16_to_f32(a->xb[m * K + k]); \
                float *o = a->acc + m * a->N + n + j;                                                    \
                *o = first ? s : *o + s;                                                                 \
            }                                                                                            \
    }
DEF_BF16(4, 1)
DEF_BF16(1, 1)
DEF_BF16(4, 2)
DEF_BF16(1, 2)
DEF_BF16(2, 4)
DEF_BF16(1, 4)
DEF_BF16(1, 8)
DEF_BF16(2, 8)

/* A per-thread buffer of at least n uint16 for packed bf16 x tiles. */
static uint16_t *bf16_tile_buffer(int64_t n) {
    static _Thread_local uint16_t *buf = NULL;
    static _Thread_local int64_t cap = 0;
    if (n > cap) {
        free(buf);
        buf = aligned_alloc(64, (size_t)((n * 2 + 63) / 64 * 64));
        cap = buf ? n : 0;
    }
    return buf;
}

/* The bf16 path over rows [n0, n1); returns 0 when its buffer could not be allocated. */
static int gemv_rows_bf16(const gemv_args *a, int64_t n0, int64_t n1) {
    for (int64_t m0 = 0; m0 < a->M;) {
        const int64_t left = a->M - m0;
        gemv_fn f, f1;
        int nb, mm;
        /* 8 rows of x against 2 weight rows: half an x load per product (16 rows against one
         * weight row load a full x vector per product and measured 1.3x slower), at the cost of
         * reading the weight once per 8 rows of x */
        if (left >= 8) f = gemvbf_2_8, f1 = gemvbf_1_8, nb = 2, mm = 8;
        else if (left >= 4) f = gemvbf_2_4, f1 = gemvbf_1_4, nb = 2, mm = 4;
        else if (left >= 2) f = gemvbf_4_2, f1 = gemvbf_1_2, nb = 4, mm = 2;
        else f = gemvbf_4_1, f1 = gemvbf_1_1, nb = 4, mm = 1;
        gemv_args sub = *a;
        sub.xb = a->xb + m0 * a->K;
        sub.acc = a->acc + m0 * a->N;
        sub.M = mm;
        int64_t kt = (GEMV_TILE_BYTES / (2 * mm)) / 32 * 32;
        if (kt < 32) kt = 32;
        uint16_t *xp = bf16_tile_buffer(kt * mm);
        if (!xp) return 0;
        sub.xpb = xp;
        for (int64_t k0 = 0; k0 < a->K; k0 += kt) {
            const int64_t k1 = k0 + kt < a->K ? k0 + kt : a->K;
            const int64_t nv = (k1 - k0) / 32;
            for (int64_t v = 0; v < nv; v++)
                for (int64_t m = 0; m < mm; m++) memcpy(xp + (v * mm + m) * 32, sub.xb + m * a->K + k0 + v * 32, 64);
            int64_t n = n0;
            for (; n + nb <= n1; n += nb) f(&sub, n, k0, k1, k0 == 0);
            for (; n < n1; n++) f1(&sub, n, k0, k1, k0 == 0);
        }
        m0 += mm;
    }
    return 1;
}

/* ---- AVX-512 BF16 + VBMI, M >= 4: 16 weight rows per vector lane set ---------------------
 * The kernels above put k in the vector lanes: every row of x is a vector load per product, each
 * output needs a horizontal sum, and two weight rows against 8 rows of x read and decode the
 * weight twice at M = 16 (1.0-1.2x our bf16 Linear there). Here the lanes are 16 output rows:
 * a tile of 16 weight rows x 64 codes is transposed in registers (4-byte groups; 16 vectors,
 * each holding 4 consecutive k of all 16 rows) and parked in a 1 KiB L1 buffer; per vector,
 * one in-lane byte shuffle puts each row's k pairs where the unpacks want them, two byte-table
 * permutes (vpermi2b, the 128 magnitudes' high and low bf16 bytes) and the sign decode it, and
 * two byte unpacks give the bf16 pairs of k = 4g, 4g+1 (A) and 4g+2, 4g+3 (B) for the 16 rows.
 * Each row of x then contributes a broadcast bf16 pair per vdpbf16ps (x is packed per call as
 * [k / 4][m][4], so the M pairs of a group sit at fixed offsets). The weight is read and decoded
 * once for all M rows, one decode feeds 2 x M products, and a vector's 16 sums are 16 outputs: no
 * horizontal sums. The transpose costs 4 shuffles per 64 codes. A prepacked weight layout would
 * save them but could not be kept in step with a weight that io.load or copyFrom rewrites in
 * place, so the plain (N, K) layout stays the only one. */
#define TBFV "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,f16c,fma"

/* 16 rows of 64 codes (rows >= nr read as zero) -> out, 16 vectors g = 0..15 (64-byte
 * aligned), vector g holding the 4 codes k = 4g..4g+3 of row r in its bytes 4r..4r+3. */
__attribute__((target(TBFV))) static inline void tile_transpose(const uint8_t *w, int64_t K, int nr, uint8_t *out) {
    __m512i o[16];
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = i < nr ? _mm512_loadu_si512(w + i * K) : _mm512_setzero_si512();
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* r[4Q + q], 128-bit lane l: rows 4Q..4Q+3 of the 4-byte group 4l + q */
    for (int Q = 0; Q < 4; Q++) {
        r[4 * Q + 0] = _mm512_unpacklo_epi64(t[4 * Q], t[4 * Q + 2]);
        r[4 * Q + 1] = _mm512_unpackhi_epi64(t[4 * Q], t[4 * Q + 2]);
        r[4 * Q + 2] = _mm512_unpacklo_epi64(t[4 * Q + 1], t[4 * Q + 3]);
        r[4 * Q + 3] = _mm512_unpackhi_epi64(t[4 * Q + 1], t[4 * Q + 3]);
    }
    /* a 4 x 4 transpose of 128-bit lanes per q: o[4l + q] lane Q = r[4Q + q] lane l */
    for (int q = 0; q < 4; q++) {
        const __m512i s0 = _mm512_shuffle_i32x4(r[q], r[4 + q], 0x44), s1 = _mm512_shuffle_i32x4(r[q], r[4 + q], 0xEE);
        const __m512i s2 = _mm512_shuffle_i32x4(r[8 + q], r[12 + q], 0x44), s3 = _mm512_shuffle_i32x4(r[8 + q], r[12 + q], 0xEE);
        o[q] = _mm512_shuffle_i32x4(s0, s2, 0x88);
        o[4 + q] = _mm512_shuffle_i32x4(s0, s2, 0xDD);
        o[8 + q] = _mm512_shuffle_i32x4(s1, s3, 0x88);
        o[12 + q] = _mm512_shuffle_i32x4(s1, s3, 0xDD);
    }
    for (int g = 0; g < 16; g++) _mm512_store_si512(out + 64 * g, o[g]);
}

/* 16 rows (n .. n+nr-1, nr <= 16) times MM rows of x over all K; sums to acc (first write).
 * MM <= 8 keeps two accumulators per row of x (k pairs 0 and 1 of each group) so that enough
 * vdpbf16ps chains are independent. */
#define DEF_T(MM)                                                                                           \
    __attribute__((target(TBFV), noinline)) static void gemvt_##MM(const gemv_args *a, int64_t n, int nr,  \
                                                        const __m512i tab[5]) {                             \
        const uint16_t *xp = a->xpb;                                                                      \
        enum { TWO = (MM) <= 8 };                                                                         \
        __m512 acc[2][MM];                                                                                \
        _Pragma("GCC unroll 16") for (int m = 0; m < MM; m++) acc[0][m] = acc[1][m] = _mm512_setzero_ps(); \
        const int64_t K = a->K, kv = K & ~(int64_t)63;                                                     \
        const uint8_t *w = a->w + n * K;                                                                  \
        const uint16_t *x = a->xb;                                                                        \
        const __m512i sgn = _mm512_set1_epi8((char)0x80);                                                 \
        _Alignas(64) uint8_t tile[1024];                                                                  \
        for (int64_t k0 = 0; k0 < kv; k0 += 64) {                                                         \
            tile_transpose(w + k0, K, nr, tile);                                                          \
            _Pragma("GCC unroll 2") for (int j = 0; j < 16; j++) {                                        \
                const __m512i g = _mm512_shuffle_epi8(_mm512_load_si512(tile + 64 * j), tab[4]);         \
                const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(tab[0], g, tab[1]), g, sgn, 0xF8); \
                const __m512i lo = _mm512_permutex2var_epi8(tab[2], g, tab[3]);                           \
                const __m512bh A = (__m512bh)_mm512_unpacklo_epi8(lo, hi);                                \
                const __m512bh B = (__m512bh)_mm512_unpackhi_epi8(lo, hi);                                \
                const uint16_t *xk = xp + (k0 / 4 + j) * (MM * 4);                                        \
                _Pragma("GCC unroll 16") for (int m = 0; m < MM; m++) {                                   \
                    int32_t p0, p1;                                                                       \
                    memcpy(&p0, xk + m * 4, 4);                                                           \
                    memcpy(&p1, xk + m * 4 + 2, 4);                                                       \
                    acc[0][m] = _mm512_dpbf16_ps(acc[0][m], A, (__m512bh)_mm512_set1_epi32(p0));          \
                    acc[TWO][m] = _mm512_dpbf16_ps(acc[TWO][m], B, (__m512bh)_mm512_set1_epi32(p1));      \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
        const __mmask16 keep = (__mmask16)((1u << nr) - 1);                                               \
        for (int m = 0; m < MM; m++) {                                                                    \
            __m512 s = TWO ? _mm512_add_ps(acc[0][m], acc[1][m]) : acc[0][m];                             \
            if (kv < K) {                                                                                 \
                float t[16];                                                                              \
                _mm512_storeu_ps(t, s);                                                                   \
                for (int r = 0; r < nr; r++)                                                              \
                    for (int64_t k = kv; k < K; k++)                                                      \
                        t[r] += decode_one(w[r * K + k], a->e5m2) * fp8_bf16_to_f32(x[m * K + k]);        \
                s = _mm512_loadu_ps(t);                                                                   \
            }                                                                                             \
            _mm512_mask_storeu_ps(a->acc + m * a->N + n, keep, s);                                        \
        }                                                                                                 \
    }
DEF_T(16)
DEF_T(12)
DEF_T(8)
DEF_T(4)

/* The transposed path over rows [n0, n1) for groups of 16, 12, 8 and 4 rows of x; returns the
 * rows of x it did (the rest, M mod 4, take the kernels above). */
__attribute__((target(TBFV))) static int64_t gemv_rows_bf16t(const gemv_args *a, int64_t n0, int64_t n1) {
    const uint16_t *tb = fp8_cast_decode_tables()->bf16[a->e5m2];
    uint8_t hb[128], lb[128];
    for (int i = 0; i < 128; i++) hb[i] = (uint8_t)(tb[i] >> 8), lb[i] = (uint8_t)tb[i];
    /* the in-lane byte shuffle: lane L holds rows 4L..4L+3, 4 codes each (k = 4g..4g+3); the
     * codes of k = 4g, 4g+1 go to bytes 0..7 (byte unpacks low: bf16 pairs of A, lane i = row i)
     * and those of k = 4g+2, 4g+3 to bytes 8..15 (unpacks high: B) */
    uint8_t sh[64];
    for (int L = 0; L < 4; L++)
        for (int w = 0; w < 8; w++) {
            sh[16 * L + w] = (uint8_t)(4 * (w / 2) + w % 2);
            sh[16 * L + 8 + w] = (uint8_t)(4 * (w / 2) + 2 + w % 2);
        }
    const __m512i tab[5] = {_mm512_loadu_si512(hb), _mm512_loadu_si512(hb + 64), _mm512_loadu_si512(lb),
                            _mm512_loadu_si512(lb + 64), _mm512_loadu_si512(sh)};
    int64_t m0 = 0;
    while (a->M - m0 >= 4) {
        const int64_t left = a->M - m0, mm = left >= 16 ? 16 : left >= 12 ? 12 : left >= 8 ? 8 : 4;
        gemv_args sub = *a;
        sub.xb = a->xb + m0 * a->K;
        sub.acc = a->acc + m0 * a->N;
        sub.M = mm;
        /* x packed as [k / 4][m][4]: the pairs of one group of 4 k sit at fixed offsets */
        const int64_t kv = a->K & ~(int64_t)63;
        uint16_t *xp = bf16_tile_buffer(kv * mm > 0 ? kv * mm : 1);
        if (!xp) break;
        for (int64_t g = 0; g < kv / 4; g++)
            for (int64_t m = 0; m < mm; m++) memcpy(xp + (g * mm + m) * 4, sub.xb + m * a->K + 4 * g, 8);
        sub.xpb = xp;
        for (int64_t n = n0; n < n1; n += 16) {
            const int nr = n1 - n < 16 ? (int)(n1 - n) : 16;
            if (mm == 16) gemvt_16(&sub, n, nr, tab);
            else if (mm == 12) gemvt_12(&sub, n, nr, tab);
            else if (mm == 8) gemvt_8(&sub, n, nr, tab);
            else gemvt_4(&sub, n, nr, tab);
        }
        m0 += mm;
    }
    return m0;
}

/* Rows [n0, n1) of W: per group of x rows (the widest kernel that fits), per x tile, every
 * weight row of the range (NB at a time, the rest one by one). */
static void gemv_rows_vec(const gemv_args *a, int64_t n0, int64_t n1, int isa) {
    for (int64_t m0 = 0; m0 < a->M;) {
        const int64_t left = a->M - m0;
        gemv_fn f, f1;
        int nb, mm;
        if (isa == 2) {
            if (left >= 16) f = f1 = gemv512_1_16, nb = 1, mm = 16;
            else if (left >= 8) f = f1 = gemv512_1_8, nb = 1, mm = 8;
            else if (left >= 4) f = gemv512_2_4, f1 = gemv512_1_4, nb = 2, mm = 4;
            else if (left >= 2) f = gemv512_4_2, f1 = gemv512_1_2, nb = 4, mm = 2;
            else f = gemv512_4_1, f1 = gemv512_1_1, nb = 4, mm = 1;
        } else {
            if (left >= 8) f = f1 = gemv256_1_8, nb = 1, mm = 8;
            else if (left >= 4) f = gemv256_2_4, f1 = gemv256_1_4, nb = 2, mm = 4;
            else if (left >= 2) f = gemv256_2_2, f1 = gemv256_1_2, nb = 2, mm = 2;
            else f = gemv256_4_1, f1 = gemv256_1_1, nb = 4, mm = 1;
        }
        gemv_args sub = *a;
        sub.x = a->x + m0 * a->K;
        sub.acc = a->acc + m0 * a->N;
        sub.M = mm;
        const int64_t unit = a->scale_mode == FP8_GEMV_SCALE_BLOCK ? a->bc : 16;
        int64_t kt = (GEMV_TILE_BYTES / (4 * mm)) / unit * unit;
        if (kt < unit) kt = unit;
        const int64_t W = isa == 2 ? 16 : 8;
        /* rows of x are K apart: 16 of them alias in L1 when K is a multiple of 4 KiB, so
         * each tile is packed contiguously, in the order the kernel reads it */
        float *xp = fp8_tile_buffer(kt * mm);
        if (!xp) {
            gemv_rows_portable(&sub, n0, n1);
            m0 += mm;
            continue;
        }
        sub.xp = xp;
        for (int64_t k0 = 0; k0 < a->K; k0 += kt) {
            const int64_t k1 = k0 + kt < a->K ? k0 + kt : a->K;
            const int64_t nv = (k1 - k0) / W;
            for (int64_t v = 0; v < nv; v++)
                for (int64_t m = 0; m < mm; m++) memcpy(xp + (v * mm + m) * W, sub.x + m * a->K + k0 + v * W, (size_t)W * 4);
            int64_t n = n0;
            for (; n + nb <= n1; n += nb) f(&sub, n, k0, k1, k0 == 0);
            for (; n < n1; n++) f1(&sub, n, k0, k1, k0 == 0);
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

    int32_t isa = 0;
    fp8_cpu_get_isa(&isa);
    int use_bf16 = 0, use_t = 0;
#ifdef GEMV_X86
    __builtin_cpu_init();
    use_bf16 = isa == 2 && x_dtype == FP8_DTYPE_BF16 && scale_mode != FP8_GEMV_SCALE_BLOCK &&
               __builtin_cpu_supports("avx512bf16");
    /* the transposed kernels: 4 or more rows of x, and byte permutes (AVX-512 VBMI) */
    use_t = use_bf16 && M >= GEMV_T_MIN_M && __builtin_cpu_supports("avx512vbmi");
#endif
    /* f32 x is read in place; bf16 x is widened for the f32 kernels (also the bf16 path's
     * fallback) by a plain loop: an OpenMP region here would cost a second thread wake-up */
    float *xf = NULL, *acc = NULL;
    int32_t st = FP8_OK;
    if (x_dtype != FP8_DTYPE_F32) st = fp8_alloc(M * K * 4, (void **)&xf);
    if (st == FP8_OK) st = fp8_alloc(M * N * 4, (void **)&acc);
    if (st != FP8_OK) {
        fp8_free(xf);
        return st;
    }
    if (xf)
        for (int64_t i = 0; i < M * K; i++) xf[i] = fp8_bf16_to_f32(((const uint16_t *)x)[i]);
    const float *xs = xf ? xf : (const float *)x;

    gemv_args a = {xs, M, K, N, (const uint8_t *)w_fp8, w_dtype == FP8_DTYPE_E5M2, scale_mode, scale,
                   scale_mode == FP8_GEMV_SCALE_BLOCK ? block_rows : 1,
                   scale_mode == FP8_GEMV_SCALE_BLOCK ? block_cols : K,
                   scale_mode == FP8_GEMV_SCALE_BLOCK ? (K + block_cols - 1) / block_cols : 1, acc, NULL, (const uint16_t *)x, NULL};
    /* Blocks of output rows per thread: multiples of 16, so vector row groups stay whole. */
#pragma omp parallel if (N * K >= ((int64_t)1 << 18)) /* small weights: one thread, no wake-ups */
    {
#ifdef _OPENMP
        const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
        const int64_t nt = 1, t = 0;
#endif
        const int64_t per = ((N + nt - 1) / nt + 15) & ~(int64_t)15;
        const int64_t n0 = t * per < N ? t * per : N, n1 = n0 + per < N ? n0 + per : N;
        if (n0 < n1) {
            int done = 0;
#ifdef GEMV_X86
            if (use_bf16) { /* bf16 inputs on AVX-512 BF16 */
                gemv_args rest = a;
                if (use_t) {
                    const int64_t md = gemv_rows_bf16t(&a, n0, n1);
                    rest.xb += md * K, rest.acc += md * N, rest.M -= md;
                }
                done = rest.M == 0 || gemv_rows_bf16(&rest, n0, n1);
            }
            /* the f32 vector paths take whole blocks of 16 columns per scale */
            if (!done && isa >= 1 && (scale_mode != FP8_GEMV_SCALE_BLOCK || block_cols % 16 == 0)) {
                gemv_rows_vec(&a, n0, n1, isa);
                done = 1;
            }
#endif
            if (!done) gemv_rows_portable(&a, n0, n1);
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
    fp8_free(xf);
    return FP8_OK;
}
