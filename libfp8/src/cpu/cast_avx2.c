/*
 * cast_avx2.c — AVX2 fp8 kernels; see cast_kernels.h and cast_avx512.c (same
 * algorithm, 8 lanes, blends instead of mask registers). Compiled without
 * -march: functions carry a target attribute and cast.c calls this table only
 * when the CPU reports AVX2. Tails shorter than a block use fp8_ref.h.
 * Results equal libfp8/src/core/fp8_ref.h bit for bit.
 *
 * The `e5m2` parameter of the specialised bodies carries the format index of
 * cast_kernels.h (0 e4m3fn, 1 e5m2, 2 e4m3fnuz, 3 e5m2fnuz), a constant in each.
 */
#include <immintrin.h>

#include "cast_kernels.h"
#include "fp8_ref.h"
#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)

#define T256 __attribute__((target("avx2,popcnt")))
#define INLINE256 static inline __attribute__((always_inline)) T256

/* Encodes 8 f32 lanes (already scaled) to fp8 codes in the low byte of each lane.
 * The sign-cleared bits are < 2^31, so signed compares order them correctly. */
INLINE256 __m256i encode8(__m256 y, const int fmt) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF);
    const int shift = FP8_ENC_SHIFT(fmt);
    const int32_t max_bits = (int32_t)FP8_ENC_MAX_BITS(fmt);
    const int32_t normal_min = (int32_t)FP8_ENC_NORMAL_MIN(fmt);
    const int32_t magic = (int32_t)FP8_ENC_MAGIC(fmt);
    const uint32_t rebias_half = FP8_ENC_REBIAS_HALF(fmt);
    __m256i u = _mm256_castps_si256(y);
    __m256i a = _mm256_and_si256(u, abs_mask);
    __m256i sign = _mm256_srli_epi32(_mm256_andnot_si256(abs_mask, u), 24);
    __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000));
    a = _mm256_min_epi32(a, _mm256_set1_epi32(max_bits));
    __m256i sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(normal_min), a);
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(a, shift), _mm256_set1_epi32(1));
    __m256i rn = _mm256_add_epi32(_mm256_add_epi32(a, _mm256_set1_epi32((int)rebias_half)), odd);
    rn = _mm256_srli_epi32(rn, shift);
    __m256 vmagic = _mm256_castsi256_ps(_mm256_set1_epi32(magic));
    __m256i rs = _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(a), vmagic)),
                                  _mm256_castps_si256(vmagic));
    __m256i r = _mm256_blendv_epi8(rn, rs, sub);
    if (FP8_FMT_FNUZ(fmt)) { /* no negative zero; the one NaN is 0x80 */
        __m256i zero = _mm256_cmpeq_epi32(r, _mm256_setzero_si256());
        r = _mm256_or_si256(r, _mm256_andnot_si256(zero, sign));
        return _mm256_blendv_epi8(r, _mm256_set1_epi32(0x80), nan);
    }
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7F), nan);
    return _mm256_or_si256(r, sign);
}

/* Decodes 8 fp8 codes (one per u32 lane) to f32. */
INLINE256 __m256 decode8(__m256i b, const int fmt) {
    const int e5m2 = FP8_FMT_E5M2(fmt);
    __m256i sign = _mm256_slli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x80)), 24);
    __m256i a = _mm256_and_si256(b, _mm256_set1_epi32(0x7F));
    __m256i normal = _mm256_add_epi32(_mm256_slli_epi32(a, FP8_ENC_SHIFT(fmt)),
                                      _mm256_set1_epi32((int)FP8_DEC_REBIAS(fmt)));
    /* a subnormal is a * 2^(1 - bias - mantissa bits) = a * the magic's ulp */
    __m256 subf = _mm256_mul_ps(_mm256_cvtepi32_ps(a),
                                _mm256_castsi256_ps(_mm256_set1_epi32((int)(FP8_ENC_MAGIC(fmt) - (23u << 23)))));
    __m256i is_normal = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(e5m2 ? 3 : 7));
    __m256i r = _mm256_blendv_epi8(_mm256_castps_si256(subf), normal, is_normal);
    if (FP8_FMT_FNUZ(fmt)) { /* every code but 0x80 (NaN) is finite */
        r = _mm256_or_si256(r, sign);
        return _mm256_castsi256_ps(_mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC00000),
                                                      _mm256_cmpeq_epi32(b, _mm256_set1_epi32(0x80))));
    }
    if (e5m2) {
        r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7F800000),
                               _mm256_cmpeq_epi32(a, _mm256_set1_epi32(0x7C)));
        r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC00000),
                               _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7C)));
    } else {
        r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC00000),
                               _mm256_cmpeq_epi32(a, _mm256_set1_epi32(0x7F)));
    }
    return _mm256_castsi256_ps(_mm256_or_si256(r, sign));
}

/* f32 lanes -> bf16 bits (round to nearest even, NaN quieted), one per u32 lane. */
INLINE256 __m256i f32_to_bf16_8(__m256 x) {
    __m256i u = _mm256_castps_si256(x);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF)),
                                     _mm256_set1_epi32(0x7F800000));
    return _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40)), nan);
}

/* Two vectors of u32 lanes (each < 2^16) -> 16 u16 in order. */
INLINE256 __m256i pack16(__m256i r0, __m256i r1) {
    return _mm256_permute4x64_epi64(_mm256_packus_epi32(r0, r1), 0xD8);
}

/* Four vectors of u32 lanes (each < 2^8) -> 32 bytes in order. */
INLINE256 __m256i pack32x8(__m256i r0, __m256i r1, __m256i r2, __m256i r3) {
    __m256i p = _mm256_packus_epi16(_mm256_packus_epi32(r0, r1), _mm256_packus_epi32(r2, r3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

INLINE256 __m256 load_bf16_as_f32(const uint16_t *p) {
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

INLINE256 __m256i load8_u8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

/* ---- quantize ---------------------------------------------------------- */

/* Loads 8 elements of an f32 (bf16 == 0) or bf16 buffer as f32 lanes. */
INLINE256 __m256 load8(const void *src, int64_t i, const int bf16) {
    return bf16 ? load_bf16_as_f32((const uint16_t *)src + i) : _mm256_loadu_ps((const float *)src + i);
}

/* dst [i, end) <- encode(src * scale) one element at a time (fp8_ref.h). */
INLINE256 void quantize_scalar(uint8_t *dst, const void *src, int64_t i, int64_t end, float scale,
                               const int bf16, const int e5m2) {
    for (; i < end; i++) {
        float x = bf16 ? fp8_bf16_to_f32(((const uint16_t *)src)[i]) : ((const float *)src)[i];
        dst[i] = fp8_ref_encode(e5m2 == 3 ? FP8_DTYPE_E5M2FNUZ : e5m2 == 2 ? FP8_DTYPE_E4M3FNUZ
                                : e5m2 ? FP8_DTYPE_E5M2 : FP8_DTYPE_E4M3FN, x * scale);
    }
}

/* dst (n) <- encode(src (n) * scale); `stream` as in cast_avx512.c. */
INLINE256 void quantize_body(uint8_t *dst, const void *src, int64_t n, float scale,
                             const int bf16, const int e5m2, const int stream) {
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    if (stream) { /* peel up to the first 32-byte aligned output byte */
        int64_t head = (int64_t)((32 - ((uintptr_t)dst & 31)) & 31);
        i = head < n ? head : n;
        quantize_scalar(dst, src, 0, i, scale, bf16, e5m2);
    }
    for (; i + 32 <= n; i += 32) {
        __m256i r0 = encode8(_mm256_mul_ps(load8(src, i, bf16), vs), e5m2);
        __m256i r1 = encode8(_mm256_mul_ps(load8(src, i + 8, bf16), vs), e5m2);
        __m256i r2 = encode8(_mm256_mul_ps(load8(src, i + 16, bf16), vs), e5m2);
        __m256i r3 = encode8(_mm256_mul_ps(load8(src, i + 24, bf16), vs), e5m2);
        __m256i packed = pack32x8(r0, r1, r2, r3);
        if (stream)
            _mm256_stream_si256((__m256i *)(dst + i), packed);
        else
            _mm256_storeu_si256((__m256i *)(dst + i), packed);
    }
    quantize_scalar(dst, src, i, n, scale, bf16, e5m2);
    if (stream) _mm_sfence();
}

/* One specialisation per (source, format, streaming) so the flags fold away. */
#define Q256(bf, f, st) quantize_body(dst, src, n, scale, bf, f, st)
#define Q256_FMT(bf, st)                                    \
    switch (fp8_kernel_fmt(fp8_dtype)) {                    \
    case 1: Q256(bf, 1, st); break;                         \
    case 2: Q256(bf, 2, st); break;                         \
    case 3: Q256(bf, 3, st); break;                         \
    default: Q256(bf, 0, st); break;                        \
    }
T256 static void quantize_avx2(uint8_t *dst, const void *src, int64_t n, float scale, int bf16,
                               int32_t fp8_dtype, int stream) {
    if (bf16 && stream) Q256_FMT(1, 1)
    else if (bf16) Q256_FMT(1, 0)
    else if (stream) Q256_FMT(0, 1)
    else Q256_FMT(0, 0)
}

T256 static void quantize_f32_avx2(uint8_t *dst, const float *src, int64_t n, float scale,
                                   int32_t fp8_dtype, int stream) {
    quantize_avx2(dst, src, n, scale, 0, fp8_dtype, stream);
}

T256 static void quantize_bf16_avx2(uint8_t *dst, const uint16_t *src, int64_t n, float scale,
                                    int32_t fp8_dtype, int stream) {
    quantize_avx2(dst, src, n, scale, 1, fp8_dtype, stream);
}

/* ---- decode / dequantize ------------------------------------------------ */

INLINE256 float decode_scalar(uint8_t b, float scale, const int e5m2, const int divide) {
    float v = fp8_cast_decode_tables()->f32[e5m2][b];
    return divide ? v / scale : v;
}

INLINE256 void decode_f32_body(float *dst, const uint8_t *src, int64_t n, float scale,
                               const int e5m2, const int divide) {
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = decode8(load8_u8(src + i), e5m2);
        _mm256_storeu_ps(dst + i, divide ? _mm256_div_ps(v, vs) : v);
    }
    for (; i < n; i++) dst[i] = decode_scalar(src[i], scale, e5m2, divide);
}

INLINE256 void decode_bf16_body(uint16_t *dst, const uint8_t *src, int64_t n, float scale,
                                const int e5m2, const int divide) {
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = decode8(load8_u8(src + i), e5m2);
        __m256 v1 = decode8(load8_u8(src + i + 8), e5m2);
        if (divide) {
            v0 = _mm256_div_ps(v0, vs), v1 = _mm256_div_ps(v1, vs);
            _mm256_storeu_si256((__m256i *)(dst + i), pack16(f32_to_bf16_8(v0), f32_to_bf16_8(v1)));
        } else { /* every fp8 value is exact in bf16: its top 16 bits (NaN: 0x7FC0) */
            _mm256_storeu_si256((__m256i *)(dst + i),
                                pack16(_mm256_srli_epi32(_mm256_castps_si256(v0), 16),
                                       _mm256_srli_epi32(_mm256_castps_si256(v1), 16)));
        }
    }
    for (; i < n; i++) dst[i] = fp8_f32_to_bf16(decode_scalar(src[i], scale, e5m2, divide));
}

#define DEC256(body, f)                                                     \
    do {                                                                    \
        if (divide) body(dst, src, n, scale, f, 1);                        \
        else body(dst, src, n, scale, f, 0);                               \
    } while (0)
#define DEC256_FMT(body)                                                    \
    switch (fp8_kernel_fmt(fp8_dtype)) {                                    \
    case 1: DEC256(body, 1); break;                                         \
    case 2: DEC256(body, 2); break;                                         \
    case 3: DEC256(body, 3); break;                                         \
    default: DEC256(body, 0); break;                                        \
    }

T256 static void decode_f32_avx2(float *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype,
                                 float scale, int divide) {
    DEC256_FMT(decode_f32_body)
}

T256 static void decode_bf16_avx2(uint16_t *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype,
                                  float scale, int divide) {
    DEC256_FMT(decode_bf16_body)
}

/* ---- bf16 <-> f32 -------------------------------------------------------- */

T256 static void f32_to_bf16_avx2(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), pack16(f32_to_bf16_8(_mm256_loadu_ps(src + i)),
                                                         f32_to_bf16_8(_mm256_loadu_ps(src + i + 8))));
    for (; i < n; i++) dst[i] = fp8_f32_to_bf16(src[i]);
}

T256 static void bf16_to_f32_avx2(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16_as_f32(src + i));
    for (; i < n; i++) dst[i] = fp8_bf16_to_f32(src[i]);
}

/* ---- amax and stats ------------------------------------------------------- */

INLINE256 uint32_t hmax_epu32(__m256i v) {
    __m128i m = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0xB1));
    return (uint32_t)_mm_cvtsi128_si32(m);
}

T256 static uint32_t amax_f32_bits_avx2(const float *src, int64_t n) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF);
    __m256i m0 = _mm256_setzero_si256(), m1 = m0, m2 = m0, m3 = m0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm256_max_epu32(m0, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(src + i)), abs_mask));
        m1 = _mm256_max_epu32(m1, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(src + i + 8)), abs_mask));
        m2 = _mm256_max_epu32(m2, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(src + i + 16)), abs_mask));
        m3 = _mm256_max_epu32(m3, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(src + i + 24)), abs_mask));
    }
    uint32_t m = hmax_epu32(_mm256_max_epu32(_mm256_max_epu32(m0, m1), _mm256_max_epu32(m2, m3)));
    for (; i < n; i++) {
        uint32_t a = fp8_ref_f32_bits(src[i]) & 0x7FFFFFFFu;
        m = a > m ? a : m;
    }
    return m;
}

T256 static uint16_t amax_bf16_bits_avx2(const uint16_t *src, int64_t n) {
    const __m256i abs_mask = _mm256_set1_epi16(0x7FFF);
    __m256i m0 = _mm256_setzero_si256(), m1 = m0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm256_max_epu16(m0, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(src + i)), abs_mask));
        m1 = _mm256_max_epu16(m1, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(src + i + 16)), abs_mask));
    }
    m0 = _mm256_max_epu16(m0, m1);
    /* Zero-extend the 16 u16 lanes to u32 and reuse the u32 horizontal max. */
    __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(m0));
    __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(m0, 1));
    uint32_t m = hmax_epu32(_mm256_max_epu32(lo, hi));
    for (; i < n; i++) {
        uint32_t a = src[i] & 0x7FFFu;
        m = a > m ? a : m;
    }
    return (uint16_t)m;
}

T256 static void stats_avx2(int64_t counts[3], const uint8_t *src, int64_t n, int32_t fp8_dtype) {
    if (fp8_is_fnuz(fp8_dtype)) { /* zero 0x00 only, NaN 0x80 only, +-max 0x7F/0xFF */
        const __m256i abs7 = _mm256_set1_epi8(0x7F), zero = _mm256_setzero_si256();
        const __m256i nan = _mm256_set1_epi8((char)0x80);
        int64_t z = 0, s = 0, q = 0, i = 0;
        for (; i + 32 <= n; i += 32) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(src + i));
            z += __builtin_popcount((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, zero)));
            s += __builtin_popcount((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(b, abs7), abs7)));
            q += __builtin_popcount((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, nan)));
        }
        counts[0] += z;
        counts[1] += s;
        counts[2] += q;
        fp8_cast_kernels_portable.stats(counts, src + i, n - i, fp8_dtype); /* the < 32-byte tail */
        return;
    }
    const uint8_t sat_code = fp8_dtype == FP8_DTYPE_E5M2 ? 0x7B : 0x7E;
    const uint8_t nan_min = fp8_dtype == FP8_DTYPE_E5M2 ? 0x7D : 0x7F;
    const __m256i abs_mask = _mm256_set1_epi8(0x7F);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i sat = _mm256_set1_epi8((char)sat_code);
    const __m256i nan_gt = _mm256_set1_epi8((char)(nan_min - 1)); /* |code| <= 0x7F: signed ok */
    int64_t z = 0, s = 0, q = 0, i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(src + i)), abs_mask);
        z += __builtin_popcount((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, zero)));
        s += __builtin_popcount((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, sat)));
        q += __builtin_popcount((uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(a, nan_gt)));
    }
    counts[0] += z;
    counts[1] += s;
    counts[2] += q;
    fp8_cast_kernels_portable.stats(counts, src + i, n - i, fp8_dtype); /* the < 32-byte tail */
}

const fp8_cast_kernels fp8_cast_kernels_avx2 = {
    quantize_f32_avx2, quantize_bf16_avx2, decode_f32_avx2,    decode_bf16_avx2,
    f32_to_bf16_avx2,  bf16_to_f32_avx2,   amax_f32_bits_avx2, amax_bf16_bits_avx2,
    stats_avx2,
};

#else /* not x86-64 GCC/Clang: empty table, never chosen by cast.c */

const fp8_cast_kernels fp8_cast_kernels_avx2 = {0};

#endif
