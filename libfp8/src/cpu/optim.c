/*
 * optim.c — fused per-parameter optimizer steps (torch.optim.SGD, AdamW) for
 * the CPU backend. Plain C11 + OpenMP, built into libfp8 by CMakeLists.txt.
 *
 * The formulas and their operation order are torch's single-tensor
 * ("foreach=False") implementations. Everything is computed in f32; a bf16
 * parameter is read once, updated in f32 and rounded to bf16 once per step
 * (torch would round after every in-place op on a bf16 tensor). Optimizer
 * state (momentum buffer, exp_avg, exp_avg_sq) is always f32.
 */
#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FP8_OPTIM_X86 1
#else
#define FP8_OPTIM_X86 0
#endif

#define PAR_ELEMS 32768

/* param, grad (n) of dtype; buf (n) f32, NULL when momentum == 0.
 *   g = grad + wd * param
 *   buf = first_step ? g : momentum * buf + (1 - dampening) * g
 *   g = nesterov ? g + momentum * buf : buf          (when momentum != 0)
 *   param -= lr * g */
int32_t fp8_cpu_sgd_step(void *param, const void *grad, float *buf, int32_t dtype, int64_t n,
                         float lr, float momentum, float dampening, float weight_decay,
                         int32_t nesterov, int32_t first_step) {
    const char *fn = "fp8_cpu_sgd_step";
    FP8_REQUIRE_PTR(param, fn);
    FP8_REQUIRE_PTR(grad, fn);
    FP8_REQUIRE(momentum == 0.0f || buf != NULL, fn, "buf is NULL but momentum is %g",
                (double)momentum);
    FP8_REQUIRE(fp8_is_float_any(dtype), fn, "dtype must be float32, bfloat16 or float16, got %s (%d)",
                fp8_dtype_name(dtype), (int)dtype);
    FP8_REQUIRE_N(n, fn);
    FP8_REQUIRE(lr >= 0.0f, fn, "lr must be >= 0, got %g", (double)lr);
    FP8_REQUIRE(momentum >= 0.0f, fn, "momentum must be >= 0, got %g", (double)momentum);
    FP8_REQUIRE(weight_decay >= 0.0f, fn, "weight_decay must be >= 0, got %g",
                (double)weight_decay);
    FP8_REQUIRE(!isnan(dampening), fn, "dampening is NaN");
    FP8_REQUIRE(!nesterov || (momentum > 0.0f && dampening == 0.0f), fn,
                "nesterov needs momentum > 0 and dampening == 0, got momentum %g, dampening %g",
                (double)momentum, (double)dampening);

    const float keep = 1.0f - dampening;
#pragma omp parallel for if (n > PAR_ELEMS)
    for (int64_t i = 0; i < n; i++) {
        const float p = fp8_load_hp(param, dtype, i);
        float g = fp8_load_hp(grad, dtype, i);
        if (weight_decay != 0.0f) g = g + weight_decay * p;
        if (momentum != 0.0f) {
            const float b = first_step ? g : buf[i] * momentum + keep * g;
            buf[i] = b;
            g = nesterov ? g + momentum * b : b;
        }
        fp8_store_hp(param, dtype, i, p + (-lr) * g);
    }
    return FP8_OK;
}

#if FP8_OPTIM_X86
/* AdamW over [i0, i0 + len) of an f32 or bf16 parameter with AVX-512, 16 elements
 * a step (the tail masked): the scalar loop's operations in the same order, each
 * an IEEE-rounded f32 op (the *_round_ps forms with the current rounding mode are
 * builtins that the compiler never fuses into an FMA), so every element gets the
 * scalar loop's bits; the bf16 rounding (nearest even, NaN kept quiet) is the
 * scalar fp8_f32_to_bf16's integer arithmetic. The portable loop ran
 * unvectorised (the dtype test per element, no -march), which made AdamW the
 * slowest part of the demo's step (bench/RESULTS.md, Session 4). fp8_cpu_set_isa(< 2)
 * selects the portable loop (test/native_kernels.test.ts compares the two). */
#define ADAMW_CHUNK 4096
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define RND _MM_FROUND_CUR_DIRECTION

/* the AVX-512 path under fp8_cpu_set_isa's cap, as the cast and column-sum kernels */
static int adamw_has_avx512(void) {
    int32_t isa = 0;
    fp8_cpu_get_isa(&isa);
    return isa >= 2;
}

T512 static void adamw_avx512(void *param, const void *grad, float *exp_avg, float *exp_avg_sq, int bf16,
                              int64_t i0, int64_t len, const fp8_adamw_consts *k, float beta2, float eps) {
    const __m512 decay = _mm512_set1_ps(k->decay), w1 = _mm512_set1_ps(k->w1), one_w1 = _mm512_set1_ps(1.0f - k->w1);
    const __m512 w2 = _mm512_set1_ps(k->w2), b2 = _mm512_set1_ps(beta2), epsv = _mm512_set1_ps(eps);
    const __m512 nss = _mm512_set1_ps(k->neg_step_size), bc2 = _mm512_set1_ps(k->bias_correction2_sqrt);
    const int lerp_low = k->w1 < 0.5f;
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i quiet = _mm512_set1_epi32(0x0040), bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    for (int64_t j = 0; j < len; j += 16) {
        const int64_t i = i0 + j;
        const __mmask16 mk = len - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (len - j)) - 1);
        __m512 g, p;
        if (bf16) {
            g = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, (const uint16_t *)grad + i)), 16));
            p = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, (const uint16_t *)param + i)), 16));
        } else {
            g = _mm512_maskz_loadu_ps(mk, (const float *)grad + i);
            p = _mm512_maskz_loadu_ps(mk, (const float *)param + i);
        }
        p = _mm512_mul_round_ps(p, decay, RND);
        __m512 m = _mm512_maskz_loadu_ps(mk, exp_avg + i);
        const __m512 d = _mm512_sub_round_ps(g, m, RND);
        m = lerp_low ? _mm512_add_round_ps(m, _mm512_mul_round_ps(w1, d, RND), RND)
                     : _mm512_sub_round_ps(g, _mm512_mul_round_ps(d, one_w1, RND), RND);
        const __m512 v = _mm512_add_round_ps(_mm512_mul_round_ps(_mm512_maskz_loadu_ps(mk, exp_avg_sq + i), b2, RND),
                                             _mm512_mul_round_ps(w2, _mm512_mul_round_ps(g, g, RND), RND), RND);
        _mm512_mask_storeu_ps(exp_avg + i, mk, m);
        _mm512_mask_storeu_ps(exp_avg_sq + i, mk, v);
        const __m512 denom = _mm512_add_round_ps(_mm512_div_round_ps(_mm512_sqrt_round_ps(v, RND), bc2, RND), epsv, RND);
        const __m512 out = _mm512_add_round_ps(p, _mm512_mul_round_ps(nss, _mm512_div_round_ps(m, denom, RND), RND), RND);
        if (bf16) {
            const __m512i u = _mm512_castps_si512(out);
            const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
            const __m512i rounded = _mm512_srli_epi32(
                _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), 16);
            const __m512i q = _mm512_mask_blend_epi32(nan, rounded, _mm512_or_si512(_mm512_srli_epi32(u, 16), quiet));
            _mm256_mask_storeu_epi16((uint16_t *)param + i, mk, _mm512_cvtepi32_epi16(q));
        } else {
            _mm512_mask_storeu_ps((float *)param + i, mk, out);
        }
    }
}
#undef T512
#undef RND
#endif

/* param, grad (n) of dtype; exp_avg, exp_avg_sq (n) f32; step >= 1 is the
 * step being taken (torch increments its counter before the update).
 *   param *= 1 - lr * wd
 *   m = lerp(m, g, 1 - b1);  v = b2 * v + (1 - b2) * g^2
 *   param -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
 * The bias corrections are computed in double, as torch does in Python. */
int32_t fp8_cpu_adamw_step(void *param, const void *grad, float *exp_avg, float *exp_avg_sq,
                           int32_t dtype, int64_t n, float lr, float beta1, float beta2, float eps,
                           float weight_decay, int64_t step) {
    const char *fn = "fp8_cpu_adamw_step";
    FP8_REQUIRE_PTR(param, fn);
    FP8_REQUIRE_PTR(grad, fn);
    FP8_REQUIRE_PTR(exp_avg, fn);
    FP8_REQUIRE_PTR(exp_avg_sq, fn);
    FP8_REQUIRE(fp8_is_float_any(dtype), fn, "dtype must be float32, bfloat16 or float16, got %s (%d)",
                fp8_dtype_name(dtype), (int)dtype);
    FP8_REQUIRE_N(n, fn);
    FP8_REQUIRE(step >= 1, fn, "step must be >= 1, got %lld", (long long)step);
    FP8_REQUIRE(lr >= 0.0f, fn, "lr must be >= 0, got %g", (double)lr);
    FP8_REQUIRE(beta1 >= 0.0f && beta1 < 1.0f, fn, "beta1 must be in [0, 1), got %g", (double)beta1);
    FP8_REQUIRE(beta2 >= 0.0f && beta2 < 1.0f, fn, "beta2 must be in [0, 1), got %g", (double)beta2);
    FP8_REQUIRE(eps >= 0.0f, fn, "eps must be >= 0, got %g", (double)eps);
    FP8_REQUIRE(weight_decay >= 0.0f, fn, "weight_decay must be >= 0, got %g",
                (double)weight_decay);

    const fp8_adamw_consts k = fp8_adamw_constants_of(lr, beta1, beta2, weight_decay, step);
    const float decay = k.decay, w1 = k.w1, w2 = k.w2, neg_step_size = k.neg_step_size;
    const float bias_correction2_sqrt = k.bias_correction2_sqrt;

#if FP8_OPTIM_X86
    if (dtype != FP8_DTYPE_F16 && adamw_has_avx512()) {
        const int64_t chunks = (n + ADAMW_CHUNK - 1) / ADAMW_CHUNK;
#pragma omp parallel for schedule(static) if (n > PAR_ELEMS)
        for (int64_t c = 0; c < chunks; c++) {
            const int64_t i0 = c * ADAMW_CHUNK;
            const int64_t len = n - i0 < ADAMW_CHUNK ? n - i0 : ADAMW_CHUNK;
            adamw_avx512(param, grad, exp_avg, exp_avg_sq, dtype == FP8_DTYPE_BF16, i0, len, &k, beta2, eps);
        }
        return FP8_OK;
    }
#endif

#pragma omp parallel for if (n > PAR_ELEMS)
    for (int64_t i = 0; i < n; i++) {
        const float g = fp8_load_hp(grad, dtype, i);
        const float p = fp8_load_hp(param, dtype, i) * decay;
        /* torch's lerp: weight < 0.5 ? m + w * (g - m) : g - (g - m) * (1 - w) */
        float m = exp_avg[i];
        m = w1 < 0.5f ? m + w1 * (g - m) : g - (g - m) * (1.0f - w1);
        const float v = exp_avg_sq[i] * beta2 + w2 * (g * g);
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        const float denom = sqrtf(v) / bias_correction2_sqrt + eps;
        fp8_store_hp(param, dtype, i, p + neg_step_size * (m / denom));
    }
    return FP8_OK;
}
