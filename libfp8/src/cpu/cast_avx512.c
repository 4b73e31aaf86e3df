/*
 * cast_avx512.c — AVX-512 (F, BW, VL) fp8 kernels; see cast_kernels.h.
 * Compiled without -march: every function carries a target attribute and
 * cast.c calls this table only when the CPU reports the features.
 * Results equal libfp8/src/core/fp8_ref.h bit for bit.
 *
 * Encode (16 f32 lanes): y = x * scale; clamp |y| to max as an integer min on
 * the sign-cleared bits (inf clamps too, NaN is masked separately); normal
 * range: round to nearest even by adding (half - 1 + lsb) to the bits, with the
 * exponent rebias folded into the same add, then shift; subnormal range: add a
 * magic float whose ulp is the smallest fp8 subnormal, so the FPU's
 * round-to-nearest-even does the rounding (torch's trick).
 *
 * The `e5m2` parameter of the specialised bodies carries the format index of
 * cast_kernels.h (0 e4m3fn, 1 e5m2, 2 e4m3fnuz, 3 e5m2fnuz), a constant in each.
 */
#include <immintrin.h>

#include "cast_kernels.h"
#include "fp8_ref.h"
#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,popcnt")))
#define INLINE512 static inline __attribute__((always_inline)) T512

/* Encodes 16 f32 lanes (already scaled) to fp8 codes in the low byte of each lane. */
INLINE512 __m512i encode16(__m512 y, const int fmt) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
    const int shift = FP8_ENC_SHIFT(fmt);
    const uint32_t max_bits = FP8_ENC_MAX_BITS(fmt);
    const uint32_t normal_min = FP8_ENC_NORMAL_MIN(fmt);
    const uint32_t magic = FP8_ENC_MAGIC(fmt);
    const uint32_t rebias_half = FP8_ENC_REBIAS_HALF(fmt);
    __m512i u = _mm512_castps_si512(y);
    __m512i a = _mm512_and_si512(u, abs_mask);
    __m512i sign = _mm512_srli_epi32(_mm512_andnot_si512(abs_mask, u), 24);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000));
    a = _mm512_min_epu32(a, _mm512_set1_epi32((int)max_bits));
    __mmask16 sub = _mm512_cmplt_epu32_mask(a, _mm512_set1_epi32((int)normal_min));
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(a, shift), _mm512_set1_epi32(1));
    __m512i rn = _mm512_add_epi32(_mm512_add_epi32(a, _mm512_set1_epi32((int)rebias_half)), odd);
    rn = _mm512_srli_epi32(rn, shift);
    __m512 vmagic = _mm512_castsi512_ps(_mm512_set1_epi32((int)magic));
    __m512i rs = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), vmagic)),
                                  _mm512_castps_si512(vmagic));
    __m512i r = _mm512_mask_blend_epi32(sub, rn, rs);
    if (FP8_FMT_FNUZ(fmt)) { /* no negative zero; the one NaN is 0x80 */
        r = _mm512_or_si512(r, _mm512_maskz_mov_epi32(_mm512_test_epi32_mask(r, r), sign));
        return _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x80));
    }
    r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7F));
    return _mm512_or_si512(r, sign);
}

/* Decodes 16 fp8 codes (one per u32 lane) to f32 bits. */
INLINE512 __m512 decode16(__m512i b, const int fmt) {
    const int e5m2 = FP8_FMT_E5M2(fmt);
    __m512i sign = _mm512_slli_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0x80)), 24);
    __m512i a = _mm512_and_si512(b, _mm512_set1_epi32(0x7F));
    __m512i normal = _mm512_add_epi32(_mm512_slli_epi32(a, FP8_ENC_SHIFT(fmt)),
                                      _mm512_set1_epi32((int)FP8_DEC_REBIAS(fmt)));
    /* a subnormal is a * 2^(1 - bias - mantissa bits) = a * the magic's ulp */
    __m512 subf = _mm512_mul_ps(_mm512_cvtepi32_ps(a),
                                _mm512_castsi512_ps(_mm512_set1_epi32((int)(FP8_ENC_MAGIC(fmt) - (23u << 23)))));
    __mmask16 is_normal = _mm512_cmpge_epu32_mask(a, _mm512_set1_epi32(e5m2 ? 4 : 8));
    __m512i r = _mm512_mask_blend_epi32(is_normal, _mm512_castps_si512(subf), normal);
    if (FP8_FMT_FNUZ(fmt)) { /* every code but 0x80 (NaN) is finite */
        r = _mm512_or_si512(r, sign);
        r = _mm512_mask_mov_epi32(r, _mm512_cmpeq_epi32_mask(b, _mm512_set1_epi32(0x80)),
                                  _mm512_set1_epi32(0x7FC00000));
        return _mm512_castsi512_ps(r);
    }
    if (e5m2) {
        r = _mm512_mask_mov_epi32(r, _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(0x7C)),
                                  _mm512_set1_epi32(0x7F800000));
        r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7C)),
                                  _mm512_set1_epi32(0x7FC00000));
    } else {
        r = _mm512_mask_mov_epi32(r, _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(0x7F)),
                                  _mm512_set1_epi32(0x7FC00000));
    }
    return _mm512_castsi512_ps(_mm512_or_si512(r, sign));
}

/* f32 lanes -> bf16 bits (round to nearest even, NaN quieted), one per u32 lane. */
INLINE512 __m512i f32_to_bf16_16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                            _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
}

INLINE512 __mmask16 tail_mask16(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

INLINE512 __m512 load_bf16_as_f32(const uint16_t *p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

INLINE512 __m512 maskload_bf16_as_f32(__mmask16 m, const uint16_t *p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

/* ---- quantize ---------------------------------------------------------- */

/* 64 encoded lanes packed into one 64-byte store. */
INLINE512 void store64(uint8_t *dst, __m512i r0, __m512i r1, __m512i r2, __m512i r3,
                       const int stream) {
    __m512i v = _mm512_castsi128_si512(_mm512_cvtepi32_epi8(r0));
    v = _mm512_inserti32x4(v, _mm512_cvtepi32_epi8(r1), 1);
    v = _mm512_inserti32x4(v, _mm512_cvtepi32_epi8(r2), 2);
    v = _mm512_inserti32x4(v, _mm512_cvtepi32_epi8(r3), 3);
    if (stream)
        _mm512_stream_si512((__m512i *)dst, v);
    else
        _mm512_storeu_si512(dst, v);
}

/* Loads 16 elements of an f32 (bf16 == 0) or bf16 buffer as f32 lanes. */
INLINE512 __m512 load16(const void *src, int64_t i, const int bf16) {
    return bf16 ? load_bf16_as_f32((const uint16_t *)src + i) : _mm512_loadu_ps((const float *)src + i);
}

INLINE512 __m512 maskload16(__mmask16 m, const void *src, int64_t i, const int bf16) {
    return bf16 ? maskload_bf16_as_f32(m, (const uint16_t *)src + i)
                : _mm512_maskz_loadu_ps(m, (const float *)src + i);
}

/* dst [i, end) <- encode(src * scale), 16 lanes at a time with masked loads and stores. */
INLINE512 void quantize_masked(uint8_t *dst, const void *src, int64_t i, int64_t end, __m512 vs,
                               const int bf16, const int e5m2) {
    for (; i < end; i += 16) {
        __mmask16 m = tail_mask16(end - i);
        __m512i r = encode16(_mm512_mul_ps(maskload16(m, src, i, bf16), vs), e5m2);
        _mm512_mask_cvtepi32_storeu_epi8(dst + i, m, r);
    }
}

/* dst (n) <- encode(src (n) * scale). With `stream`, the 64-byte blocks of dst
 * go out as non-temporal stores: a large output is not read back soon, and
 * streaming skips the read-for-ownership of each destination line. */
INLINE512 void quantize_body(uint8_t *dst, const void *src, int64_t n, float scale,
                             const int bf16, const int e5m2, const int stream) {
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t i = 0;
    if (stream) { /* peel up to the first 64-byte aligned output byte */
        int64_t head = (int64_t)((64 - ((uintptr_t)dst & 63)) & 63);
        i = head < n ? head : n;
        quantize_masked(dst, src, 0, i, vs, bf16, e5m2);
    }
    for (; i + 64 <= n; i += 64) {
        __m512i r0 = encode16(_mm512_mul_ps(load16(src, i, bf16), vs), e5m2);
        __m512i r1 = encode16(_mm512_mul_ps(load16(src, i + 16, bf16), vs), e5m2);
        __m512i r2 = encode16(_mm512_mul_ps(load16(src, i + 32, bf16), vs), e5m2);
        __m512i r3 = encode16(_mm512_mul_ps(load16(src, i + 48, bf16), vs), e5m2);
        store64(dst + i, r0, r1, r2, r3, stream);
    }
    quantize_masked(dst, src, i, n, vs, bf16, e5m2);
    if (stream) _mm_sfence();
}

/* One specialisation per (source, format, streaming) so the flags fold away. */
#define Q512(bf, f, st) quantize_body(dst, src, n, scale, bf, f, st)
#define Q512_FMT(bf, st)                                    \
    switch (fp8_kernel_fmt(fp8_dtype)) {                    \
    case 1: Q512(bf, 1, st); break;                         \
    case 2: Q512(bf, 2, st); break;                         \
    case 3: Q512(bf, 3, st); break;                         \
    default: Q512(bf, 0, st); break;                        \
    }
T512 static void quantize_avx512(uint8_t *dst, const void *src, int64_t n, float scale, int bf16,
                                 int32_t fp8_dtype, int stream) {
    if (bf16 && stream) Q512_FMT(1, 1)
    else if (bf16) Q512_FMT(1, 0)
    else if (stream) Q512_FMT(0, 1)
    else Q512_FMT(0, 0)
}

T512 static void quantize_f32_avx512(uint8_t *dst, const float *src, int64_t n, float scale,
                                     int32_t fp8_dtype, int stream) {
    quantize_avx512(dst, src, n, scale, 0, fp8_dtype, stream);
}

T512 static void quantize_bf16_avx512(uint8_t *dst, const uint16_t *src, int64_t n, float scale,
                                      int32_t fp8_dtype, int stream) {
    quantize_avx512(dst, src, n, scale, 1, fp8_dtype, stream);
}

/* ---- decode / dequantize ------------------------------------------------ */

INLINE512 __m512 decode_scaled16(__m512i b, __m512 vs, const int e5m2, const int divide) {
    __m512 v = decode16(b, e5m2);
    return divide ? _mm512_div_ps(v, vs) : v;
}

INLINE512 void decode_f32_body(float *dst, const uint8_t *src, int64_t n, float scale,
                               const int e5m2, const int divide) {
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm512_storeu_ps(dst + i, decode_scaled16(b, vs, e5m2, divide));
    }
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        __m512i b = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, src + i));
        _mm512_mask_storeu_ps(dst + i, m, decode_scaled16(b, vs, e5m2, divide));
    }
}

INLINE512 void decode_bf16_body(uint16_t *dst, const uint8_t *src, int64_t n, float scale,
                                const int e5m2, const int divide) {
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        __m512i h = f32_to_bf16_16(decode_scaled16(b, vs, e5m2, divide));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(h));
    }
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        __m512i b = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, src + i));
        _mm512_mask_cvtepi32_storeu_epi16(dst + i, m, f32_to_bf16_16(decode_scaled16(b, vs, e5m2, divide)));
    }
}

#define DEC512(body, f)                                                     \
    do {                                                                    \
        if (divide) body(dst, src, n, scale, f, 1);                        \
        else body(dst, src, n, scale, f, 0);                               \
    } while (0)
#define DEC512_FMT(body)                                                    \
    switch (fp8_kernel_fmt(fp8_dtype)) {                                    \
    case 1: DEC512(body, 1); break;                                         \
    case 2: DEC512(body, 2); break;                                         \
    case 3: DEC512(body, 3); break;                                         \
    default: DEC512(body, 0); break;                                        \
    }

T512 static void decode_f32_avx512(float *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype,
                                   float scale, int divide) {
    DEC512_FMT(decode_f32_body)
}

/* Unscaled decode to bf16 by table lookup (fp8_cast_decode_tables): the 128
 * magnitudes of a format fill four 32-word vectors; two two-source word
 * permutes look up 32 codes at once (the permute reads index bits 5:0, bit 6
 * picks the half, bit 7 is the sign). */
INLINE512 __m512i lookup32_bf16(__m512i b, __m512i t0, __m512i t1, __m512i t2, __m512i t3) {
    __m512i lo = _mm512_permutex2var_epi16(t0, b, t1);
    __m512i hi = _mm512_permutex2var_epi16(t2, b, t3);
    __m512i mag = _mm512_mask_blend_epi16(_mm512_test_epi16_mask(b, _mm512_set1_epi16(0x40)), lo, hi);
    return _mm512_or_si512(mag, _mm512_slli_epi16(_mm512_and_si512(b, _mm512_set1_epi16(0x80)), 8));
}

T512 static void decode_bf16_lut(uint16_t *dst, const uint8_t *src, int64_t n, int e5m2) {
    const uint16_t *w = fp8_cast_decode_tables()->bf16[e5m2];
    const __m512i t0 = _mm512_loadu_si512(w), t1 = _mm512_loadu_si512(w + 32);
    const __m512i t2 = _mm512_loadu_si512(w + 64), t3 = _mm512_loadu_si512(w + 96);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i b0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(src + i)));
        __m512i b1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(src + i + 32)));
        _mm512_storeu_si512(dst + i, lookup32_bf16(b0, t0, t1, t2, t3));
        _mm512_storeu_si512(dst + i + 32, lookup32_bf16(b1, t0, t1, t2, t3));
    }
    for (; i < n; i += 32) {
        const int64_t left = n - i;
        const __mmask32 m = left >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << left) - 1u);
        __m512i b = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, src + i));
        _mm512_mask_storeu_epi16(dst + i, m, lookup32_bf16(b, t0, t1, t2, t3));
    }
}

T512 static void decode_bf16_avx512(uint16_t *dst, const uint8_t *src, int64_t n,
                                    int32_t fp8_dtype, float scale, int divide) {
    /* the table lookup ORs in the code's sign bit: the OCP formats only (fnuz 0x80 is NaN) */
    if (!divide && !fp8_is_fnuz(fp8_dtype)) decode_bf16_lut(dst, src, n, fp8_kernel_fmt(fp8_dtype));
    else DEC512_FMT(decode_bf16_body)
}

/* ---- bf16 <-> f32 -------------------------------------------------------- */

T512 static void f32_to_bf16_avx512(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtepi32_epi16(f32_to_bf16_16(_mm512_loadu_ps(src + i))));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm512_mask_cvtepi32_storeu_epi16(dst + i, m, f32_to_bf16_16(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

T512 static void bf16_to_f32_avx512(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load_bf16_as_f32(src + i));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm512_mask_storeu_ps(dst + i, m, maskload_bf16_as_f32(m, src + i));
    }
}

/* ---- amax and stats ------------------------------------------------------- */

T512 static uint32_t amax_f32_bits_avx512(const float *src, int64_t n) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
    __m512i m0 = _mm512_setzero_si512(), m1 = m0, m2 = m0, m3 = m0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        m0 = _mm512_max_epu32(m0, _mm512_and_si512(_mm512_loadu_si512(src + i), abs_mask));
        m1 = _mm512_max_epu32(m1, _mm512_and_si512(_mm512_loadu_si512(src + i + 16), abs_mask));
        m2 = _mm512_max_epu32(m2, _mm512_and_si512(_mm512_loadu_si512(src + i + 32), abs_mask));
        m3 = _mm512_max_epu32(m3, _mm512_and_si512(_mm512_loadu_si512(src + i + 48), abs_mask));
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask16(n - i);
        m0 = _mm512_max_epu32(m0, _mm512_and_si512(_mm512_maskz_loadu_epi32(m, src + i), abs_mask));
    }
    m0 = _mm512_max_epu32(_mm512_max_epu32(m0, m1), _mm512_max_epu32(m2, m3));
    return (uint32_t)_mm512_reduce_max_epu32(m0);
}

T512 static uint16_t amax_bf16_bits_avx512(const uint16_t *src, int64_t n) {
    const __m512i abs_mask = _mm512_set1_epi16(0x7FFF);
    __m512i m0 = _mm512_setzero_si512(), m1 = m0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        m0 = _mm512_max_epu16(m0, _mm512_and_si512(_mm512_loadu_si512(src + i), abs_mask));
        m1 = _mm512_max_epu16(m1, _mm512_and_si512(_mm512_loadu_si512(src + i + 32), abs_mask));
    }
    for (; i < n; i += 32) {
        int64_t left = n - i;
        __mmask32 m = left >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << left) - 1u);
        m0 = _mm512_max_epu16(m0, _mm512_and_si512(_mm512_maskz_loadu_epi16(m, src + i), abs_mask));
    }
    m0 = _mm512_max_epu16(m0, m1);
    __m512i lo = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(m0));
    __m512i hi = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(m0, 1));
    return (uint16_t)_mm512_reduce_max_epu32(_mm512_max_epu32(lo, hi));
}

T512 static void stats_avx512(int64_t counts[3], const uint8_t *src, int64_t n, int32_t fp8_dtype) {
    const __m512i abs_mask = _mm512_set1_epi8(0x7F);
    const __m512i zero = _mm512_setzero_si512();
    if (fp8_is_fnuz(fp8_dtype)) { /* zero 0x00 only, NaN 0x80 only, +-max 0x7F/0xFF */
        int64_t z = 0, s = 0, q = 0;
        for (int64_t i = 0; i < n; i += 64) {
            int64_t left = n - i;
            __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
            __m512i b = _mm512_maskz_loadu_epi8(m, src + i);
            z += __builtin_popcountll(_mm512_mask_cmpeq_epi8_mask(m, b, zero));
            s += __builtin_popcountll(_mm512_mask_cmpeq_epi8_mask(m, _mm512_and_si512(b, abs_mask), abs_mask));
            q += __builtin_popcountll(_mm512_mask_cmpeq_epi8_mask(m, b, _mm512_set1_epi8((char)0x80)));
        }
        counts[0] += z;
        counts[1] += s;
        counts[2] += q;
        return;
    }
    const __m512i sat = _mm512_set1_epi8(fp8_dtype == FP8_DTYPE_E5M2 ? 0x7B : 0x7E);
    const __m512i nan_min = _mm512_set1_epi8(fp8_dtype == FP8_DTYPE_E5M2 ? 0x7D : 0x7F);
    int64_t z = 0, s = 0, q = 0;
    for (int64_t i = 0; i < n; i += 64) {
        int64_t left = n - i;
        __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
        __m512i a = _mm512_and_si512(_mm512_maskz_loadu_epi8(m, src + i), abs_mask);
        z += __builtin_popcountll(_mm512_mask_cmpeq_epi8_mask(m, a, zero));
        s += __builtin_popcountll(_mm512_mask_cmpeq_epi8_mask(m, a, sat));
        q += __builtin_popcountll(_mm512_mask_cmpge_epu8_mask(m, a, nan_min));
    }
    counts[0] += z;
    counts[1] += s;
    counts[2] += q;
}

const fp8_cast_kernels fp8_cast_kernels_avx512 = {
    quantize_f32_avx512, quantize_bf16_avx512, decode_f32_avx512,    decode_bf16_avx512,
    f32_to_bf16_avx512,  bf16_to_f32_avx512,   amax_f32_bits_avx512, amax_bf16_bits_avx512,
    stats_avx512,
};

#else /* not x86-64 GCC/Clang: empty table, never chosen by cast.c */

const fp8_cast_kernels fp8_cast_kernels_avx512 = {0};

#endif
