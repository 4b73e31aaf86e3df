/*
 * colsum.c — column sums of a row-major (outer, R, C) f32 or bf16 tensor into
 * f32 (outer, C): dst[o][c] = sum over r of src[o][r][c], in f32, the rows
 * added in order r = 0, 1, ..., R-1. fp8_cpu_reduce takes it for sum and mean
 * over a contiguous block of dims, which is what a bias gradient is (sum over
 * dim 0 of the (M, N) output gradient). oneDNN (2.6.3 and 3.7.2 alike) runs
 * that reduction with its reference loop (ref:any): 200+ ms for a (4096, 4096)
 * bf16 gradient where this kernel takes under 10 ms (see docs/architecture.md
 * and bench/RESULTS.md).
 *
 * Vectorised across columns, so every column is still a sequential f32 sum:
 * the AVX-512, AVX2 and portable kernels give the same bits as the scalar
 * loop, and the same as oneDNN's reference reduction. Threads split the
 * (outer, column block) tasks, which keeps that order too.
 */
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "fp8_ref.h"
#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FP8_COLSUM_X86 1
#else
#define FP8_COLSUM_X86 0
#endif

enum { BLOCK_MAX = 256 }; /* columns per task: the f32 accumulator row stays in L1 */

/* acc[0..w) += row[0..w) (as f32) for each of R rows, `stride` elements apart */
static void block_portable(float *acc, const void *src, int32_t dtype, int64_t R, int64_t stride,
                           int64_t w) {
    for (int64_t r = 0; r < R; ++r) {
        if (dtype == FP8_DTYPE_F32) {
            const float *row = (const float *)src + r * stride;
            for (int64_t j = 0; j < w; ++j) acc[j] += row[j];
        } else {
            const uint16_t *row = (const uint16_t *)src + r * stride;
            for (int64_t j = 0; j < w; ++j) acc[j] += fp8_bf16_to_f32(row[j]);
        }
    }
}

#if FP8_COLSUM_X86
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define T256 __attribute__((target("avx2")))

T512 static void block_avx512(float *acc, const void *src, int32_t dtype, int64_t R,
                              int64_t stride, int64_t w) {
    for (int64_t r = 0; r < R; ++r) {
        for (int64_t j = 0; j < w; j += 16) {
            const __mmask16 m = w - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (w - j)) - 1);
            __m512 x;
            if (dtype == FP8_DTYPE_F32) {
                x = _mm512_maskz_loadu_ps(m, (const float *)src + r * stride + j);
            } else {
                const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)src + r * stride + j);
                x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            }
            _mm512_mask_storeu_ps(acc + j, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, acc + j), x));
        }
    }
}

T256 static void block_avx2(float *acc, const void *src, int32_t dtype, int64_t R, int64_t stride,
                            int64_t w) {
    const int64_t wv = w & ~(int64_t)7;
    for (int64_t r = 0; r < R; ++r) {
        int64_t j = 0;
        if (dtype == FP8_DTYPE_F32) {
            const float *row = (const float *)src + r * stride;
            for (; j < wv; j += 8)
                _mm256_storeu_ps(acc + j, _mm256_add_ps(_mm256_loadu_ps(acc + j), _mm256_loadu_ps(row + j)));
            for (; j < w; ++j) acc[j] += row[j];
        } else {
            const uint16_t *row = (const uint16_t *)src + r * stride;
            for (; j < wv; j += 8) {
                const __m128i h = _mm_loadu_si128((const __m128i *)(row + j));
                const __m256 x = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
                _mm256_storeu_ps(acc + j, _mm256_add_ps(_mm256_loadu_ps(acc + j), x));
            }
            for (; j < w; ++j) acc[j] += fp8_bf16_to_f32(row[j]);
        }
    }
}
#endif

typedef void (*block_fn)(float *, const void *, int32_t, int64_t, int64_t, int64_t);

/* dst (outer, C) f32 <- column sums of src (outer, R, C); dtype F32 or BF16.
 * Arguments are validated by the caller (fp8_cpu_reduce). */
void fp8_cpu_colsum_f32(float *dst, const void *src, int32_t dtype, int64_t outer, int64_t R,
                        int64_t C) {
    int32_t isa = 0;
    fp8_cpu_get_isa(&isa);
    block_fn fn = block_portable;
    int64_t vl = 8;
#if FP8_COLSUM_X86
    if (isa >= 2) fn = block_avx512, vl = 16;
    else if (isa >= 1) fn = block_avx2;
#endif
    const int nthreads = omp_get_max_threads();
    /* enough column blocks for every thread, each a whole number of vectors */
    int64_t bw = (C + nthreads - 1) / nthreads;
    bw = (bw + vl - 1) / vl * vl;
    if (bw > BLOCK_MAX) bw = BLOCK_MAX;
    if (bw < vl) bw = vl;
    const int64_t blocks = (C + bw - 1) / bw;
    const int64_t tasks = outer * blocks;
    const size_t esize = dtype == FP8_DTYPE_F32 ? 4 : 2;
#pragma omp parallel for schedule(static) if (outer * R * C >= (1 << 15))
    for (int64_t t = 0; t < tasks; ++t) {
        const int64_t o = t / blocks, c0 = (t % blocks) * bw;
        const int64_t w = C - c0 < bw ? C - c0 : bw;
        float acc[BLOCK_MAX] __attribute__((aligned(64)));
        memset(acc, 0, sizeof acc);
        const char *base = (const char *)src + (size_t)((o * R * C + c0) * (int64_t)esize);
        fn(acc, base, dtype, R, C, w);
        memcpy(dst + o * C + c0, acc, (size_t)w * sizeof(float));
    }
}
