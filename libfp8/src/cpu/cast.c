/*
 * cast.c — fp8 cast, amax, scale and telemetry entry points of fp8.h
 * ("fp8 kernels"), the portable kernel table and the run-time ISA choice.
 *
 * Layout: each entry point validates its arguments, then splits the range into
 * chunks run by OpenMP threads (single-threaded below FP8_PARALLEL_MIN
 * elements) and calls the kernel table of the chosen ISA: portable C here,
 * AVX2 in cast_avx2.c, AVX-512 in cast_avx512.c. The vector files use
 * per-function target attributes, so the library needs no -march flag.
 * All three tables give bit-identical results; numerics are defined by
 * libfp8/src/core/fp8_ref.h (torch's conversions on a clamped input).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cast_kernels.h"
#include "fp8_ref.h"
#include "internal.h"
/* this device's dtype sets for the shared checks (cast_checks.h): float16 and the fnuz formats too */
#define FP8_CHECKS_REQUIRE_FP8 FP8_REQUIRE_FP8_CPU
#define FP8_CHECKS_REQUIRE_HP FP8_REQUIRE_HP16
#define FP8_CHECKS_CONVERTIBLE(dt) (fp8_is_float_any(dt) || fp8_is_fp8_cpu(dt))
#define FP8_CHECKS_CONVERTIBLE_NAMES "float32, bfloat16, float16 or an fp8 dtype"
#include "cast_checks.h"

/* Below this many elements a kernel runs on the calling thread. */
#define FP8_PARALLEL_MIN ((int64_t)1 << 16)
/* OpenMP work unit: contiguous elements per task. */
#define FP8_CHUNK ((int64_t)1 << 16)
/* From this many elements quantize writes its output with non-temporal stores:
 * the f32 input alone is then 16 MiB, so the output would not stay in cache. */
#define FP8_STREAM_MIN ((int64_t)1 << 22)

/* ---- portable kernels -------------------------------------------------- */
/* Plain C that compilers vectorise (SSE2, NEON): no branches in the loops. */

static fp8_decode_tables decode_tables;
static pthread_once_t decode_tables_once = PTHREAD_ONCE_INIT;

static void decode_tables_init(void) {
    for (int b = 0; b < 256; b++) {
        const float v[4] = {fp8_ref_e4m3fn_to_f32((uint8_t)b), fp8_ref_e5m2_to_f32((uint8_t)b),
                            fp8_ref_e4m3fnuz_to_f32((uint8_t)b), fp8_ref_e5m2fnuz_to_f32((uint8_t)b)};
        for (int f = 0; f < 4; f++) {
            decode_tables.f32[f][b] = v[f];
            /* the NaN's f32 sign (fnuz: 0x80 decodes to +NaN) */
            decode_tables.bf16[f][b] = v[f] != v[f] ? (uint16_t)(0x7FC0 | ((fp8_ref_f32_bits(v[f]) >> 16) & 0x8000))
                                                    : (uint16_t)(fp8_ref_f32_bits(v[f]) >> 16);
        }
    }
}

const fp8_decode_tables *fp8_cast_decode_tables(void) {
    pthread_once(&decode_tables_once, decode_tables_init);
    return &decode_tables;
}

/* sat_rne of one scaled f32 to fp8 without branches: the AVX-512 kernel's
 * algorithm (cast_avx512.c: encode16) for one lane, equal to fp8_ref's encode.
 * Normal range: round to nearest even by adding (half - 1 + lsb) with the
 * exponent rebias folded in, then shift; subnormal range: add a magic float
 * whose ulp is the smallest fp8 subnormal and let the FPU round. */
static inline uint8_t encode_branchless(float y, const int fmt) {
    const int shift = FP8_ENC_SHIFT(fmt);
    const uint32_t max_bits = FP8_ENC_MAX_BITS(fmt);
    const uint32_t normal_min = FP8_ENC_NORMAL_MIN(fmt);
    const uint32_t magic = FP8_ENC_MAGIC(fmt);
    const uint32_t rebias_half = FP8_ENC_REBIAS_HALF(fmt);
    const uint32_t u = fp8_ref_f32_bits(y);
    const uint32_t a0 = u & 0x7FFFFFFFu;
    const uint32_t a = a0 < max_bits ? a0 : max_bits;
    const uint32_t rn = (a + rebias_half + ((a >> shift) & 1u)) >> shift;
    const uint32_t rs =
        fp8_ref_f32_bits(fp8_ref_f32_from_bits(a) + fp8_ref_f32_from_bits(magic)) - magic;
    /* selects as masks, so that no branch keeps the loop from vectorising */
    const uint32_t sub = 0u - (uint32_t)(a < normal_min), nan = 0u - (uint32_t)(a0 > 0x7F800000u);
    const uint32_t mag = (rs & sub) | (rn & ~sub), sign = (u >> 24) & 0x80u;
    if (FP8_FMT_FNUZ(fmt)) { /* no negative zero; the one NaN is 0x80 */
        const uint32_t nz = 0u - (uint32_t)(mag != 0);
        return (uint8_t)(((mag | (sign & nz)) & ~nan) | (0x80u & nan));
    }
    return (uint8_t)(((mag & ~nan) | (0x7Fu & nan)) | sign);
}

/* one loop per format, so that fmt is a constant in each */
#define FP8_QUANTIZE_LOOP(load)                                                                 \
    switch (fp8_kernel_fmt(fp8_dtype)) {                                                        \
    case 1: for (int64_t i = 0; i < n; i++) dst[i] = encode_branchless((load) * scale, 1); break; \
    case 2: for (int64_t i = 0; i < n; i++) dst[i] = encode_branchless((load) * scale, 2); break; \
    case 3: for (int64_t i = 0; i < n; i++) dst[i] = encode_branchless((load) * scale, 3); break; \
    default: for (int64_t i = 0; i < n; i++) dst[i] = encode_branchless((load) * scale, 0); break; \
    }

static void quantize_f32_portable(uint8_t *dst, const float *src, int64_t n, float scale,
                                  int32_t fp8_dtype, int stream) {
    FP8_QUANTIZE_LOOP(src[i])
}

static void quantize_bf16_portable(uint8_t *dst, const uint16_t *src, int64_t n, float scale,
                                   int32_t fp8_dtype, int stream) {
    FP8_QUANTIZE_LOOP(fp8_bf16_to_f32(src[i]))
}

static void decode_f32_portable(float *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype,
                                float scale, int divide) {
    const float *t = fp8_cast_decode_tables()->f32[fp8_kernel_fmt(fp8_dtype)];
    if (divide)
        for (int64_t i = 0; i < n; i++) dst[i] = t[src[i]] / scale;
    else
        for (int64_t i = 0; i < n; i++) dst[i] = t[src[i]];
}

static void decode_bf16_portable(uint16_t *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype,
                                 float scale, int divide) {
    const int fmt = fp8_kernel_fmt(fp8_dtype);
    if (divide) {
        const float *t = fp8_cast_decode_tables()->f32[fmt];
        for (int64_t i = 0; i < n; i++) dst[i] = fp8_f32_to_bf16(t[src[i]] / scale);
    } else {
        const uint16_t *t = fp8_cast_decode_tables()->bf16[fmt];
        for (int64_t i = 0; i < n; i++) dst[i] = t[src[i]];
    }
}

static void f32_to_bf16_portable(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = fp8_f32_to_bf16(src[i]);
}

static void bf16_to_f32_portable(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = fp8_bf16_to_f32(src[i]);
}

static uint32_t amax_f32_bits_portable(const float *src, int64_t n) {
    uint32_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t a = fp8_ref_f32_bits(src[i]) & 0x7FFFFFFFu;
        m = a > m ? a : m;
    }
    return m;
}

static uint16_t amax_bf16_bits_portable(const uint16_t *src, int64_t n) {
    uint16_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t a = src[i] & 0x7FFFu;
        m = a > m ? a : m;
    }
    return m;
}

static void stats_portable(int64_t counts[3], const uint8_t *src, int64_t n, int32_t fp8_dtype) {
    if (fp8_is_fnuz(fp8_dtype)) { /* zero 0x00 only, NaN 0x80 only, +-max 0x7F/0xFF */
        int64_t z = 0, s = 0, q = 0;
        for (int64_t i = 0; i < n; i++) {
            z += src[i] == 0;
            s += (src[i] & 0x7F) == 0x7F;
            q += src[i] == 0x80;
        }
        counts[0] += z;
        counts[1] += s;
        counts[2] += q;
        return;
    }
    uint8_t sat = fp8_dtype == FP8_DTYPE_E5M2 ? 0x7B : 0x7E;
    uint8_t nan_min = fp8_dtype == FP8_DTYPE_E5M2 ? 0x7D : 0x7F;
    int64_t z = 0, s = 0, q = 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t a = src[i] & 0x7F;
        z += a == 0;
        s += a == sat;
        q += a >= nan_min;
    }
    counts[0] += z;
    counts[1] += s;
    counts[2] += q;
}

const fp8_cast_kernels fp8_cast_kernels_portable = {
    quantize_f32_portable, quantize_bf16_portable, decode_f32_portable,    decode_bf16_portable,
    f32_to_bf16_portable,  bf16_to_f32_portable,   amax_f32_bits_portable, amax_bf16_bits_portable,
    stats_portable,
};

/* ---- ISA choice -------------------------------------------------------- */

enum { ISA_PORTABLE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

static _Atomic int32_t isa_cap = ISA_AVX512;

static int32_t detected_isa(void) {
    static _Atomic int32_t detected = -1;
    int32_t d = atomic_load(&detected);
    if (d >= 0) return d;
    d = ISA_PORTABLE;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) d = ISA_AVX2;
    if (d == ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        d = ISA_AVX512;
#endif
    atomic_store(&detected, d);
    return d;
}

static int32_t active_isa(void) {
    int32_t cap = atomic_load(&isa_cap), d = detected_isa();
    return cap < d ? cap : d;
}

static const fp8_cast_kernels *kernels(void) {
    switch (active_isa()) {
    case ISA_AVX512: return &fp8_cast_kernels_avx512;
    case ISA_AVX2: return &fp8_cast_kernels_avx2;
    default: return &fp8_cast_kernels_portable;
    }
}

int32_t fp8_cpu_get_isa(int32_t *out) {
    FP8_REQUIRE_PTR(out, "fp8_cpu_get_isa");
    *out = active_isa();
    return FP8_OK;
}

int32_t fp8_cpu_set_isa(int32_t max_isa) {
    FP8_REQUIRE(max_isa >= ISA_PORTABLE && max_isa <= ISA_AVX512, "fp8_cpu_set_isa",
                "max_isa must be 0 (portable), 1 (AVX2) or 2 (AVX-512), got %d", max_isa);
    atomic_store(&isa_cap, max_isa);
    return FP8_OK;
}

/* ---- chunked parallel driver ------------------------------------------- */

/* Runs `body` over [i0, i0 + len) ranges covering [0, n): inline for small n,
 * else as chunks handed to the OpenMP threads on demand (dynamic: on a shared
 * machine a thread that loses its core does not hold the others back). */
#define FOR_CHUNKS(n, i0, len, body)                                                      \
    do {                                                                                  \
        const int64_t n_ = (n);                                                           \
        if (n_ < FP8_PARALLEL_MIN) {                                                      \
            const int64_t i0 = 0, len = n_;                                               \
            body;                                                                         \
        } else {                                                                          \
            const int64_t chunks_ = (n_ + FP8_CHUNK - 1) / FP8_CHUNK;                     \
            _Pragma("omp parallel for schedule(dynamic)")                                 \
            for (int64_t c_ = 0; c_ < chunks_; c_++) {                                    \
                const int64_t i0 = c_ * FP8_CHUNK;                                        \
                const int64_t len = n_ - i0 < FP8_CHUNK ? n_ - i0 : FP8_CHUNK;            \
                body;                                                                     \
            }                                                                             \
        }                                                                                 \
    } while (0)

/* FOR_CHUNKS for a max-reduction: `part` is an expression over [i0, i0 + len)
 * giving a uint32; m (a uint32 lvalue, 0 on entry) becomes the max over all. */
#define FOR_CHUNKS_MAX(n, m, i0, len, part)                                               \
    do {                                                                                  \
        const int64_t n_ = (n);                                                           \
        if (n_ < FP8_PARALLEL_MIN) {                                                      \
            const int64_t i0 = 0, len = n_;                                               \
            m = (part);                                                                   \
        } else {                                                                          \
            const int64_t chunks_ = (n_ + FP8_CHUNK - 1) / FP8_CHUNK;                     \
            uint32_t m_ = 0;                                                              \
            _Pragma("omp parallel for schedule(dynamic) reduction(max : m_)")             \
            for (int64_t c_ = 0; c_ < chunks_; c_++) {                                    \
                const int64_t i0 = c_ * FP8_CHUNK;                                        \
                const int64_t len = n_ - i0 < FP8_CHUNK ? n_ - i0 : FP8_CHUNK;            \
                const uint32_t p_ = (part);                                               \
                m_ = p_ > m_ ? p_ : m_;                                                   \
            }                                                                             \
            m = m_;                                                                       \
        }                                                                                 \
    } while (0)

/* ---- validation helpers ------------------------------------------------ */

/* ---- float16 sources and destinations ------------------------------------
 * The ISA kernels take f32 and bf16; a float16 buffer goes through f32 in
 * blocks of F16_BLOCK elements on the stack (exact: every half is an f32). */
enum { F16_BLOCK = 1024 };

static void f16_to_f32_block(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = fp8_f16_to_f32(src[i]);
}

/* max |bits| of n halves, as the f32 bits of that magnitude (NaN stays above inf) */
static uint32_t amax_f16_bits(const uint16_t *src, int64_t n) {
    uint16_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint16_t a = src[i] & 0x7FFFu;
        m = a > m ? a : m;
    }
    return fp8_ref_f32_bits(fp8_f16_to_f32(m));
}

static void quantize_f16(const fp8_cast_kernels *k, uint8_t *dst, const uint16_t *src, int64_t n, float scale,
                         int32_t fp8_dtype) {
    float buf[F16_BLOCK];
    for (int64_t j = 0; j < n; j += F16_BLOCK) {
        const int64_t m = n - j < F16_BLOCK ? n - j : F16_BLOCK;
        f16_to_f32_block(buf, src + j, m);
        k->quantize_f32(dst + j, buf, m, scale, fp8_dtype, 0);
    }
}

static void decode_f16(const fp8_cast_kernels *k, uint16_t *dst, const uint8_t *src, int64_t n, int32_t fp8_dtype,
                       float scale, int divide) {
    float buf[F16_BLOCK];
    for (int64_t j = 0; j < n; j += F16_BLOCK) {
        const int64_t m = n - j < F16_BLOCK ? n - j : F16_BLOCK;
        k->decode_f32(buf, src + j, m, fp8_dtype, scale, divide);
        for (int64_t i = 0; i < m; i++) dst[j + i] = fp8_f32_to_f16(buf[i]);
    }
}

/* The checks every cast into fp8 makes (quantize and its fused forms) are
 * cast_checks.h's, shared with the CUDA twins: one rule, the same words. */
#define CHECK_QUANTIZE(fn, dst_fp8, fp8_dtype, src, src_dtype, n) \
    FP8_CHECK(fp8_check_quantize(fn, "", dst_fp8, fp8_dtype, src, src_dtype, n))

/* ---- entry points ------------------------------------------------------ */

/* dst (n) fp8 <- sat_rne(src (n) * scale); src F32 or BF16. Arguments valid. */
static void quantize_range(uint8_t *dst, int32_t fp8_dtype, const void *src, int32_t src_dtype,
                           int64_t n, float scale) {
    const fp8_cast_kernels *k = kernels();
    const int stream = n >= FP8_STREAM_MIN;
    if (src_dtype == FP8_DTYPE_F32)
        FOR_CHUNKS(n, i0, len,
                   k->quantize_f32(dst + i0, (const float *)src + i0, len, scale, fp8_dtype, stream));
    else if (src_dtype == FP8_DTYPE_F16)
        FOR_CHUNKS(n, i0, len, quantize_f16(k, dst + i0, (const uint16_t *)src + i0, len, scale, fp8_dtype));
    else
        FOR_CHUNKS(n, i0, len,
                   k->quantize_bf16(dst + i0, (const uint16_t *)src + i0, len, scale, fp8_dtype, stream));
}

/* dst (n) F32 or BF16 <- decode(src (n)) [/ scale]. Arguments valid. */
static void decode_range(void *dst, int32_t dst_dtype, const uint8_t *src, int32_t fp8_dtype,
                         int64_t n, float scale, int divide) {
    const fp8_cast_kernels *k = kernels();
    if (dst_dtype == FP8_DTYPE_F32)
        FOR_CHUNKS(n, i0, len,
                   k->decode_f32((float *)dst + i0, src + i0, len, fp8_dtype, scale, divide));
    else if (dst_dtype == FP8_DTYPE_F16)
        FOR_CHUNKS(n, i0, len, decode_f16(k, (uint16_t *)dst + i0, src + i0, len, fp8_dtype, scale, divide));
    else
        FOR_CHUNKS(n, i0, len,
                   k->decode_bf16((uint16_t *)dst + i0, src + i0, len, fp8_dtype, scale, divide));
}

int32_t fp8_cpu_convert(void *dst, int32_t dst_dtype, const void *src, int32_t src_dtype,
                        int64_t n) {
    static const char fn[] = "fp8_cpu_convert";
    FP8_CHECK(fp8_check_convert(fn, "", dst, dst_dtype, src, src_dtype, n));
    if (n == 0) return FP8_OK;

    const fp8_cast_kernels *k = kernels();
    if (dst_dtype == src_dtype) {
        memmove(dst, src, (size_t)n * (size_t)fp8_dtype_size(dst_dtype));
    } else if (fp8_is_fp8_cpu(dst_dtype) && fp8_is_float_any(src_dtype)) {
        quantize_range(dst, dst_dtype, src, src_dtype, n, 1.0f);
    } else if (fp8_is_float_any(dst_dtype) && fp8_is_fp8_cpu(src_dtype)) {
        decode_range(dst, dst_dtype, src, src_dtype, n, 1.0f, 0);
    } else if (dst_dtype == FP8_DTYPE_F16 || src_dtype == FP8_DTYPE_F16) { /* float16 <-> f32 / bf16 */
        FOR_CHUNKS(n, i0, len, {
            for (int64_t i = i0; i < i0 + len; i++) fp8_store_hp(dst, dst_dtype, i, fp8_load_hp(src, src_dtype, i));
        });
    } else if (dst_dtype == FP8_DTYPE_BF16) { /* from F32 */
        FOR_CHUNKS(n, i0, len,
                   k->f32_to_bf16((uint16_t *)dst + i0, (const float *)src + i0, len));
    } else if (dst_dtype == FP8_DTYPE_F32) { /* from BF16 */
        FOR_CHUNKS(n, i0, len,
                   k->bf16_to_f32((float *)dst + i0, (const uint16_t *)src + i0, len));
    } else { /* fp8 -> other fp8: exact decode, then saturating encode */
        FOR_CHUNKS(n, i0, len, {
            float buf[1024];
            for (int64_t j = 0; j < len; j += 1024) {
                int64_t m = len - j < 1024 ? len - j : 1024;
                k->decode_f32(buf, (const uint8_t *)src + i0 + j, m, src_dtype, 1.0f, 0);
                k->quantize_f32((uint8_t *)dst + i0 + j, buf, m, 1.0f, dst_dtype, 0);
            }
        });
    }
    return FP8_OK;
}

int32_t fp8_cpu_quantize(void *dst_fp8, int32_t fp8_dtype, const void *src, int32_t src_dtype,
                         int64_t n, const float *scale) {
    static const char fn[] = "fp8_cpu_quantize";
    CHECK_QUANTIZE(fn, dst_fp8, fp8_dtype, src, src_dtype, n);
    FP8_REQUIRE_PTR(scale, fn);
    if (n > 0) quantize_range(dst_fp8, fp8_dtype, src, src_dtype, n, *scale);
    return FP8_OK;
}

int32_t fp8_cpu_dequantize(void *dst, int32_t dst_dtype, const void *src_fp8, int32_t fp8_dtype,
                           int64_t n, const float *scale) {
    static const char fn[] = "fp8_cpu_dequantize";
    FP8_CHECK(fp8_check_dequantize(fn, "", dst, dst_dtype, src_fp8, fp8_dtype, n, scale));
    if (n > 0) decode_range(dst, dst_dtype, src_fp8, fp8_dtype, n, *scale, 1);
    return FP8_OK;
}

/* max |src| over n (F32 or BF16) as f32; NaN (canonical quiet) if any is NaN. */
static uint32_t amax_bits_span(const void *src, int32_t src_dtype, int64_t i0, int64_t len) {
    const fp8_cast_kernels *k = kernels();
    if (src_dtype == FP8_DTYPE_F16) return amax_f16_bits((const uint16_t *)src + i0, len);
    return src_dtype == FP8_DTYPE_F32 ? k->amax_f32_bits((const float *)src + i0, len)
                                      : (uint32_t)k->amax_bf16_bits((const uint16_t *)src + i0, len) << 16;
}

/* The f32 amax of max |bits| m: NaN made canonical (quiet), as every amax here. */
static float amax_from_bits(uint32_t m) { return fp8_ref_f32_from_bits(m > 0x7F800000u ? 0x7FC00000u : m); }

static float amax_range(const void *src, int32_t src_dtype, int64_t n) {
    uint32_t m = 0;
    FOR_CHUNKS_MAX(n, m, i0, len, amax_bits_span(src, src_dtype, i0, len));
    return amax_from_bits(m);
}

int32_t fp8_cpu_amax(float *out, const void *src, int32_t src_dtype, int64_t n) {
    static const char fn[] = "fp8_cpu_amax";
    FP8_REQUIRE_PTR(out, fn);
    FP8_CHECK(fp8_check_amax_src(fn, "", src, src_dtype, n, -1));
    *out = amax_range(src, src_dtype, n);
    return FP8_OK;
}

int32_t fp8_cpu_amax_to_scale(float *amax_out, float *scale_out, const void *src,
                              int32_t src_dtype, int64_t n, int32_t fp8_dtype,
                              int32_t clamp_to_f16) {
    static const char fn[] = "fp8_cpu_amax_to_scale";
    FP8_REQUIRE_PTR(amax_out, fn);
    FP8_REQUIRE_PTR(scale_out, fn);
    FP8_CHECK(fp8_check_amax_src(fn, "", src, src_dtype, n, fp8_dtype));
    float amax = amax_range(src, src_dtype, n);
    *amax_out = amax;
    *scale_out = fp8_ref_scale_from_amax(amax, fp8_dtype, clamp_to_f16);
    return FP8_OK;
}

int32_t fp8_cpu_sync_amax_history(float *const *amax, float *const *history, float *const *scale,
                                  const int32_t *fp8_dtype, const int32_t *clamp_to_f16,
                                  int64_t count, int64_t history_len) {
    static const char fn[] = "fp8_cpu_sync_amax_history";
    FP8_CHECK(fp8_check_amax_history_tables(fn, "", amax, history, scale, fp8_dtype, clamp_to_f16,
                                            count, history_len));
    /* Validate everything before touching anything: a failed call changes nothing. */
    for (int64_t i = 0; i < count; i++) {
        FP8_REQUIRE(amax[i] && history[i] && scale[i], fn,
                    "tensor %lld: amax, history and scale pointers must be non-NULL",
                    (long long)i);
        FP8_REQUIRE(fp8_is_fp8_cpu(fp8_dtype[i]), fn,
                    "tensor %lld: fp8_dtype must be an fp8 dtype, got %s (%d)",
                    (long long)i, fp8_dtype_name(fp8_dtype[i]), (int)fp8_dtype[i]);
    }
    for (int64_t i = 0; i < count; i++) {
        float *h = history[i];
        float a = *amax[i]; /* read first: amax may alias a history slot */
        memmove(h + 1, h, (size_t)(history_len - 1) * sizeof(float));
        h[0] = a;
        /* torch.max over the history: NaN propagates. */
        float hmax = h[0];
        for (int64_t j = 1; j < history_len && !isnan(hmax); j++)
            hmax = isnan(h[j]) || h[j] > hmax ? h[j] : hmax;
        *scale[i] = fp8_ref_scale_from_amax(hmax, fp8_dtype[i], clamp_to_f16[i]);
    }
    return FP8_OK;
}

int32_t fp8_cpu_fp8_stats(int64_t *zeros, int64_t *saturated, int64_t *nans, const void *src_fp8,
                          int32_t fp8_dtype, int64_t n) {
    static const char fn[] = "fp8_cpu_fp8_stats";
    FP8_REQUIRE_PTR(zeros, fn);
    FP8_REQUIRE_PTR(saturated, fn);
    FP8_REQUIRE_PTR(nans, fn);
    FP8_REQUIRE_FP8_CPU(fp8_dtype, "fp8_dtype", fn);
    FP8_REQUIRE_N(n, fn);
    FP8_REQUIRE_DATA(src_fp8, n, fn);
    const fp8_cast_kernels *k = kernels();
    int64_t z = 0, s = 0, q = 0;
    if (n < FP8_PARALLEL_MIN) {
        int64_t c[3] = {0, 0, 0};
        k->stats(c, src_fp8, n, fp8_dtype);
        z = c[0], s = c[1], q = c[2];
    } else {
        const int64_t chunks = (n + FP8_CHUNK - 1) / FP8_CHUNK;
#pragma omp parallel for schedule(dynamic) reduction(+ : z, s, q)
        for (int64_t ch = 0; ch < chunks; ch++) {
            const int64_t i0 = ch * FP8_CHUNK;
            const int64_t len = n - i0 < FP8_CHUNK ? n - i0 : FP8_CHUNK;
            int64_t c[3] = {0, 0, 0};
            k->stats(c, (const uint8_t *)src_fp8 + i0, len, fp8_dtype);
            z += c[0], s += c[1], q += c[2];
        }
    }
    *zeros = z;
    *saturated = s;
    *nans = q;
    return FP8_OK;
}

/* ---- fused kernels: quantize + decode, cast statistics ------------------ */

/* dst_fp8 [lo, hi) <- sat_rne(src * s) and, when dst_decoded is non-NULL, its
 * exact bf16 decode; block by block, so each block is decoded while its fp8
 * bytes are still in L1. With want_amax, each block's max |bits| is taken just
 * before it is encoded (so src is read from memory once) and the max over the
 * span is returned; else 0. One thread's share. Arguments valid. */
static uint32_t quantize_decode_span(uint8_t *q, uint16_t *d, int32_t fp8_dtype, const void *src,
                                     int32_t src_dtype, int64_t lo, int64_t hi, float s,
                                     int want_amax) {
    const fp8_cast_kernels *k = kernels();
    enum { BLOCK = 4096 };
    uint32_t m = 0;
    for (int64_t at = lo; at < hi; at += BLOCK) {
        const int64_t len = hi - at < BLOCK ? hi - at : BLOCK;
        if (want_amax) {
            const uint32_t b = amax_bits_span(src, src_dtype, at, len);
            m = b > m ? b : m;
        }
        if (src_dtype == FP8_DTYPE_F32)
            k->quantize_f32(q + at, (const float *)src + at, len, s, fp8_dtype, 0);
        else if (src_dtype == FP8_DTYPE_F16)
            quantize_f16(k, q + at, (const uint16_t *)src + at, len, s, fp8_dtype);
        else
            k->quantize_bf16(q + at, (const uint16_t *)src + at, len, s, fp8_dtype, 0);
        if (d) k->decode_bf16(d + at, q + at, len, fp8_dtype, 1.0f, 0);
    }
    return m;
}

int32_t fp8_cpu_quantize_decode(void *dst_fp8, void *dst_decoded, int32_t fp8_dtype,
                                const void *src, int32_t src_dtype, int64_t n,
                                const float *scale) {
    static const char fn[] = "fp8_cpu_quantize_decode";
    CHECK_QUANTIZE(fn, dst_fp8, fp8_dtype, src, src_dtype, n);
    FP8_REQUIRE_DATA(dst_decoded, n, fn);
    FP8_REQUIRE_PTR(scale, fn);
    if (n == 0) return FP8_OK;
    const float s = *scale;
    FOR_CHUNKS(n, i0, len,
               (void)quantize_decode_span(dst_fp8, dst_decoded, fp8_dtype, src, src_dtype, i0, i0 + len, s, 0));
    return FP8_OK;
}

/* Dynamic scaling in one call (one crossing of the FFI, no amax tensor): the
 * amax pass, then the cast with the scale derived from it. A fused variant in
 * which each thread cast the share whose amax it had just taken (still in its
 * cache) measured no faster on 2 cores, and slower after other work had evicted
 * the data: its static split waits for a late thread, the chunked one does not. */
int32_t fp8_cpu_quantize_dynamic(void *dst_fp8, void *dst_decoded, int32_t fp8_dtype,
                                 const void *src, int32_t src_dtype, int64_t n, float *amax_out,
                                 float *scale_out, int32_t clamp_to_f16, int32_t round_pow2) {
    static const char fn[] = "fp8_cpu_quantize_dynamic";
    CHECK_QUANTIZE(fn, dst_fp8, fp8_dtype, src, src_dtype, n);
    FP8_REQUIRE_PTR(scale_out, fn);
    const float amax = amax_range(src, src_dtype, n);
    float s = fp8_ref_scale_from_amax(amax, fp8_dtype, clamp_to_f16);
    if (round_pow2) s = fp8_ref_round_down_pow2(s);
    if (amax_out) *amax_out = amax;
    *scale_out = s;
    FOR_CHUNKS(n, i0, len,
               (void)quantize_decode_span(dst_fp8, dst_decoded, fp8_dtype, src, src_dtype, i0, i0 + len, s, 0));
    return FP8_OK;
}

/* Delayed scaling's cast: with the scale already known, the amax of this
 * tensor (for the next sync) is taken in the same pass as the cast, block by
 * block, as Transformer Engine's cast kernels do. */
int32_t fp8_cpu_quantize_amax(void *dst_fp8, void *dst_decoded, int32_t fp8_dtype, const void *src,
                              int32_t src_dtype, int64_t n, const float *scale, float *amax_out) {
    static const char fn[] = "fp8_cpu_quantize_amax";
    CHECK_QUANTIZE(fn, dst_fp8, fp8_dtype, src, src_dtype, n);
    FP8_REQUIRE_PTR(scale, fn);
    FP8_REQUIRE_PTR(amax_out, fn);
    const float s = *scale;
    uint32_t m = 0;
    FOR_CHUNKS_MAX(n, m, i0, len,
                   quantize_decode_span(dst_fp8, dst_decoded, fp8_dtype, src, src_dtype, i0, i0 + len, s, 1));
    *amax_out = amax_from_bits(m);
    return FP8_OK;
}

int32_t fp8_cpu_cast_stats(int64_t *clipped, int64_t *underflow, double *ref_sq, double *err_sq,
                           const void *src, int32_t src_dtype, const void *src_fp8,
                           int32_t fp8_dtype, const float *scale, int32_t per_row, int64_t rows,
                           int64_t cols) {
    static const char fn[] = "fp8_cpu_cast_stats";
    FP8_REQUIRE_PTR(clipped, fn);
    FP8_REQUIRE_PTR(underflow, fn);
    FP8_REQUIRE_PTR(ref_sq, fn);
    FP8_REQUIRE_PTR(err_sq, fn);
    FP8_REQUIRE_PTR(scale, fn);
    FP8_REQUIRE_FP8_CPU(fp8_dtype, "fp8_dtype", fn);
    FP8_REQUIRE_HP16(src_dtype, "src_dtype", fn);
    FP8_REQUIRE(fp8_count_ok(rows, cols), fn, "rows %lld and cols %lld must be >= 0 with at most 2^46 elements",
                (long long)rows, (long long)cols);
    const int64_t n = rows * cols;
    FP8_REQUIRE_DATA(src, n, fn);
    FP8_REQUIRE_DATA(src_fp8, n, fn);
    /* Past max + half an ulp, rounding alone would leave the format: e4m3fn
     * 448 + 16 (a tie at 464 rounds to even 448); e5m2 and e5m2fnuz 57344 + 4096
     * and e4m3fnuz 240 + 8 (a tie there rounds up, out of the format). Those
     * elements were clamped by the cast. */
    const int e4 = fp8_dtype == FP8_DTYPE_E4M3FN;
    const float clip_at = fp8_dtype == FP8_DTYPE_E4M3FNUZ ? 248.0f : 61440.0f;
    const float *decode = fp8_cast_decode_tables()->f32[fp8_kernel_fmt(fp8_dtype)];
    int64_t c = 0, u = 0;
    double rs = 0, es = 0;
#pragma omp parallel for schedule(static) reduction(+ : c, u, rs, es) if (n >= FP8_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float s = scale[per_row ? r : 0];
        for (int64_t j = 0; j < cols; j++) {
            const int64_t i = r * cols + j;
            const float x = fp8_load_hp(src, src_dtype, i);
            const float v = decode[((const uint8_t *)src_fp8)[i]];
            const float a = fabsf(x * s);
            if (e4 ? a > 464.0f : a >= clip_at)
                c++;
            else if (v == 0.0f && x != 0.0f)
                u++;
            const double d = (double)x - (double)(v / s);
            rs += (double)x * (double)x;
            es += d * d;
        }
    }
    *clipped = c;
    *underflow = u;
    *ref_sq = rs;
    *err_sq = es;
    return FP8_OK;
}

/* ---- quantize + transpose: both fp8 layouts (and bf16 decodes) in one pass -- */

/* 8x8 bytes transposed in registers: in[r] holds row r's 8 bytes (little
 * endian: byte c is column c); out[c] gets column c. Three rounds of masked
 * swaps (2x2 blocks of 4x4, of 2x2, of single bytes), plain 64-bit integer
 * code that every compiler keeps in registers. */
static inline void transpose8x8_u8(const uint8_t *src, int64_t src_stride, uint8_t *dst,
                                   int64_t dst_stride) {
    uint64_t x[8];
    for (int r = 0; r < 8; ++r) memcpy(&x[r], src + r * src_stride, 8);
    for (int r = 0; r < 4; ++r) { /* swap the off-diagonal 4x4 blocks */
        const uint64_t t = ((x[r] >> 32) ^ x[r + 4]) & 0x00000000FFFFFFFFull;
        x[r] ^= t << 32;
        x[r + 4] ^= t;
    }
    for (int b = 0; b < 8; b += 4)
        for (int r = b; r < b + 2; ++r) { /* 2x2 blocks inside each 4x4 */
            const uint64_t t = ((x[r] >> 16) ^ x[r + 2]) & 0x0000FFFF0000FFFFull;
            x[r] ^= t << 16;
            x[r + 2] ^= t;
        }
    for (int r = 0; r < 8; r += 2) { /* single bytes inside each 2x2 */
        const uint64_t t = ((x[r] >> 8) ^ x[r + 1]) & 0x00FF00FF00FF00FFull;
        x[r] ^= t << 8;
        x[r + 1] ^= t;
    }
    for (int c = 0; c < 8; ++c) memcpy(dst + c * dst_stride, &x[c], 8);
}

/* A tile is QT_ROWS rows x QT_COLS columns of src: each of its rows is a
 * 512-byte (bf16) run that the quantize kernel streams, and each column of its
 * transpose a 64-byte fp8 (128-byte bf16) run, two full cache lines of the
 * transposed outputs. (64 x 64 tiles read src in 128-byte runs from 64 rows at
 * once, which the prefetchers followed poorly: half the speed.) */
enum { QT_ROWS = 64, QT_COLS = 256 };

/* One tile, rows [r0, r0 + th) x cols [c0, c0 + tw) of src (rows, cols): the
 * tile is quantized row by row into an L1 buffer with the ISA's quantize
 * kernel, written out row-major and transposed (8x8 byte blocks), and each
 * requested bf16 decode is made from the buffer with the ISA's decode kernel.
 * Arguments valid; th <= QT_ROWS, tw <= QT_COLS. */
static void quantize_transpose_tile(uint8_t *q, uint8_t *qt, uint16_t *d, uint16_t *dt,
                                    int32_t fp8_dtype, const void *src, int32_t src_dtype,
                                    int64_t rows, int64_t cols, int64_t r0, int64_t c0, int64_t th,
                                    int64_t tw, float s, int stream_dt) {
    const fp8_cast_kernels *k = kernels();
    uint8_t tile[QT_ROWS * QT_COLS], tile_t[QT_COLS * QT_ROWS];
    const int transposed = qt || dt;
    if (transposed && ((th | tw) & 7)) memset(tile, 0, sizeof tile); /* edge tile: defined bytes past the corner */
    for (int64_t r = 0; r < th; ++r) {
        const int64_t at = (r0 + r) * cols + c0;
        /* without a transposed output the bytes go straight to q when it is given */
        uint8_t *row = transposed || !q ? tile + r * QT_COLS : q + at;
        if (src_dtype == FP8_DTYPE_F32)
            k->quantize_f32(row, (const float *)src + at, tw, s, fp8_dtype, 0);
        else
            k->quantize_bf16(row, (const uint16_t *)src + at, tw, s, fp8_dtype, 0);
        if (q && row != q + at) memcpy(q + at, row, (size_t)tw);
        if (d) k->decode_bf16(d + at, row, tw, fp8_dtype, 1.0f, 0);
    }
    if (!transposed) return;
    /* transpose the valid th x tw corner: whole 8x8 blocks (a block past th or
     * tw reads bytes past the corner, which land past the valid corner of
     * tile_t and are never written out) */
    for (int64_t r = 0; r < th; r += 8)
        for (int64_t c = 0; c < tw; c += 8)
            transpose8x8_u8(tile + r * QT_COLS + c, QT_COLS, tile_t + c * QT_ROWS + r, QT_ROWS);
    if (th == QT_ROWS && dt) {
        /* a full-height tile: its transposed columns lie end to end in tile_t, so one
         * decode call makes them all (a call per 64-byte column cost more than the work) */
        uint16_t tile_d[QT_COLS * QT_ROWS];
        k->decode_bf16(tile_d, tile_t, tw * QT_ROWS, fp8_dtype, 1.0f, 0);
        for (int64_t c = 0; c < tw; ++c) {
            const int64_t at = (c0 + c) * rows + r0;
            if (qt) memcpy(qt + at, tile_t + c * QT_ROWS, QT_ROWS);
#if defined(__SSE2__)
            if (stream_dt && ((uintptr_t)(dt + at) & 15) == 0) {
                /* two whole cache lines that nothing reads soon: stored past the cache,
                 * without first reading them in (see fp8_cpu_quantize_transpose) */
                for (int j = 0; j < QT_ROWS; j += 8)
                    _mm_stream_si128((__m128i *)(dt + at + j), _mm_loadu_si128((const __m128i *)(tile_d + c * QT_ROWS + j)));
                continue;
            }
#endif
            memcpy(dt + at, tile_d + c * QT_ROWS, QT_ROWS * sizeof(uint16_t));
        }
        return;
    }
    for (int64_t c = 0; c < tw; ++c) {
        const int64_t at = (c0 + c) * rows + r0;
        const uint8_t *col = tile_t + c * QT_ROWS;
        if (qt) memcpy(qt + at, col, (size_t)th);
        if (dt) k->decode_bf16(dt + at, col, th, fp8_dtype, 1.0f, 0);
    }
}

int32_t fp8_cpu_quantize_transpose(void *dst_fp8, void *dst_fp8_t, void *dst_decoded,
                                   void *dst_decoded_t, int32_t fp8_dtype, const void *src,
                                   int32_t src_dtype, int64_t rows, int64_t cols,
                                   const float *scale) {
    static const char fn[] = "fp8_cpu_quantize_transpose";
    FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
    FP8_REQUIRE_HP(src_dtype, "src_dtype", fn);
    FP8_REQUIRE(rows >= 0 && cols >= 0, fn, "rows=%lld and cols=%lld must be >= 0",
                (long long)rows, (long long)cols);
    FP8_REQUIRE(cols == 0 || rows <= INT64_MAX / cols, fn, "rows=%lld x cols=%lld overflows int64",
                (long long)rows, (long long)cols);
    const int64_t n = rows * cols;
    FP8_REQUIRE(dst_fp8 || dst_fp8_t || dst_decoded || dst_decoded_t || n == 0, fn,
                "every output is NULL (rows=%lld, cols=%lld): nothing to write", (long long)rows,
                (long long)cols);
    FP8_REQUIRE_DATA(src, n, fn);
    FP8_REQUIRE_PTR(scale, fn);
    if (n == 0) return FP8_OK;
    const float s = *scale;
    const int64_t row_tiles = (rows + QT_ROWS - 1) / QT_ROWS;
    const int64_t col_tiles = (cols + QT_COLS - 1) / QT_COLS;
    const int64_t tiles = row_tiles * col_tiles;
    /* A transposed decode larger than a typical last-level cache share is
     * written with non-temporal stores: each tile writes 128 bytes into each of
     * 256 rows far apart, and ordinary stores first read every such line in
     * (4096 x 4096 bf16 -> e5m2 with both decodes, 2 threads, AMD Zen 4:
     * 8.8 ms with ordinary stores, 7.3 ms streamed; at 1024 x 1024 no
     * difference, and there the GEMM that follows finds dt in the cache). */
    const int stream_dt = dst_decoded_t != NULL && n * 2 >= ((int64_t)16 << 20);
    /* tiles in row-major order, handed out on demand (a thread that loses its
     * core on a shared machine does not hold the others back) */
#pragma omp parallel if (n >= FP8_PARALLEL_MIN)
    {
#pragma omp for schedule(dynamic, 4)
        for (int64_t t = 0; t < tiles; ++t) {
            const int64_t r0 = (t / col_tiles) * QT_ROWS, c0 = (t % col_tiles) * QT_COLS;
            const int64_t th = rows - r0 < QT_ROWS ? rows - r0 : QT_ROWS;
            const int64_t tw = cols - c0 < QT_COLS ? cols - c0 : QT_COLS;
            quantize_transpose_tile(dst_fp8, dst_fp8_t, dst_decoded, dst_decoded_t, fp8_dtype, src,
                                    src_dtype, rows, cols, r0, c0, th, tw, s, stream_dt);
        }
#if defined(__SSE2__)
        if (stream_dt) _mm_sfence(); /* this thread's streamed stores land before the GEMM reads dt */
#endif
    }
    return FP8_OK;
}
