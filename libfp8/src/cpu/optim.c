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
