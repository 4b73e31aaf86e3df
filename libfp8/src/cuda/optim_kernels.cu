/*
 * optim_kernels.cu — the device twins of cpu/optim.c: fused SGD and AdamW
 * steps over one parameter (torch's single-tensor formulas). Built into
 * libfp8_cuda (see CMakeLists.txt).
 *
 * The f32 operations and their order are those of the CPU, each written as a
 * rounded intrinsic (__fmul_rn, __fadd_rn, ...) so that nvcc cannot contract
 * a multiply and an add into an FMA (the CPU build has no FMA), and the
 * per-step constants are computed on the host by the CPU's own expressions:
 * a step gives the CPU's bits (NaN payloads aside). param and grad are F32
 * or BF16 (a bf16 parameter is rounded once per step); state is f32.
 */
#include <cmath>

#include "cuda_common.cuh"

namespace fp8cuda {
namespace {

constexpr int kThreads = 256;

/* param, grad (n) of DT; buf (n) f32, unused when momentum == 0.
 *   g = grad + wd * param
 *   buf = first_step ? g : buf * momentum + keep * g      (keep = 1 - dampening)
 *   g = nesterov ? g + momentum * buf : buf
 *   param = param + (-lr) * g
 * With vec (every pointer 16-byte aligned) kVec<DT> elements per step through
 * 16-byte loads, then the tail one by one; the same operations either way. */
__device__ __forceinline__ float sgd_elem(float p, float g, float *b, float lr, float momentum, float keep,
                                          float weight_decay, int nesterov, int first_step) {
    if (weight_decay != 0.0f) g = __fadd_rn(g, __fmul_rn(weight_decay, p));
    if (momentum != 0.0f) {
        *b = first_step ? g : __fadd_rn(__fmul_rn(*b, momentum), __fmul_rn(keep, g));
        g = nesterov ? __fadd_rn(g, __fmul_rn(momentum, *b)) : *b;
    }
    return __fadd_rn(p, __fmul_rn(-lr, g));
}

template <int DT>
__global__ void __launch_bounds__(kThreads)
sgd_kernel(void *param, const void *grad, float *buf, int64_t n, float lr, float momentum, float keep,
           float weight_decay, int nesterov, int first_step, bool vec) {
    constexpr int V = kVec<DT>;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x, tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t nv = vec ? n / V : 0;
    for (int64_t k = tid; k < nv; k += stride) {
        float p[V], g[V], b[V];
        load_vec<DT>(param, k, p);
        load_vec<DT>(grad, k, g);
        if (momentum != 0.0f && !first_step) load_vec_f32<DT>(buf, k, b);
#pragma unroll
        for (int j = 0; j < V; j++) p[j] = sgd_elem(p[j], g[j], &b[j], lr, momentum, keep, weight_decay, nesterov, first_step);
        if (momentum != 0.0f) store_vec_f32<DT>(buf, k, b);
        store_vec<DT>(param, k, p);
    }
    for (int64_t i = nv * V + tid; i < n; i += stride) {
        float b = momentum != 0.0f && !first_step ? buf[i] : 0.0f;
        const float p = sgd_elem(load_hp(param, DT, i), load_hp(grad, DT, i), &b, lr, momentum, keep, weight_decay,
                                 nesterov, first_step);
        if (momentum != 0.0f) buf[i] = b;
        store_hp(param, DT, i, p);
    }
}

/* param, grad (n) of DT; exp_avg m, exp_avg_sq v (n) f32.
 *   p = param * decay                                      (decay = 1 - lr * wd)
 *   m = lerp(m, g, w1)   (torch: w1 < 0.5 ? m + w1 * (g - m) : g - (g - m) * (1 - w1))
 *   v = v * beta2 + w2 * (g * g)                          (w2 = 1 - beta2)
 *   param = p + neg_step_size * (m / (sqrt(v) / bias_correction2_sqrt + eps)) */
/* consts, when non-NULL, is device memory holding fp8_adamw_consts (the
 * capturable form: a replayed graph reads each step's constants from there);
 * else the scalar arguments hold them. Vectors as sgd_kernel. */
__device__ __forceinline__ float adamw_elem(float param, float g, float *m, float *v, const fp8_adamw_consts &k,
                                            float one_minus_w1, float beta2, float eps) {
    const float p = __fmul_rn(param, k.decay);
    const float d = __fsub_rn(g, *m);
    *m = k.w1 < 0.5f ? __fadd_rn(*m, __fmul_rn(k.w1, d)) : __fsub_rn(g, __fmul_rn(d, one_minus_w1));
    *v = __fadd_rn(__fmul_rn(*v, beta2), __fmul_rn(k.w2, __fmul_rn(g, g)));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(*v), k.bias_correction2_sqrt), eps);
    return __fadd_rn(p, __fmul_rn(k.neg_step_size, __fdiv_rn(*m, denom)));
}

template <int DT>
__global__ void __launch_bounds__(kThreads)
adamw_kernel(void *param, const void *grad, float *exp_avg, float *exp_avg_sq, int64_t n, fp8_adamw_consts k,
             const fp8_adamw_consts *consts, float beta2, float eps, bool vec) {
    if (consts) k = *consts;
    constexpr int V = kVec<DT>;
    const float one_minus_w1 = __fsub_rn(1.0f, k.w1);
    const int64_t stride = (int64_t)gridDim.x * blockDim.x, tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t nv = vec ? n / V : 0;
    for (int64_t q = tid; q < nv; q += stride) {
        float p[V], g[V], m[V], v[V];
        load_vec<DT>(param, q, p);
        load_vec<DT>(grad, q, g);
        load_vec_f32<DT>(exp_avg, q, m);
        load_vec_f32<DT>(exp_avg_sq, q, v);
#pragma unroll
        for (int j = 0; j < V; j++) p[j] = adamw_elem(p[j], g[j], &m[j], &v[j], k, one_minus_w1, beta2, eps);
        store_vec_f32<DT>(exp_avg, q, m);
        store_vec_f32<DT>(exp_avg_sq, q, v);
        store_vec<DT>(param, q, p);
    }
    for (int64_t i = nv * V + tid; i < n; i += stride) {
        float m = exp_avg[i], v = exp_avg_sq[i];
        const float p = adamw_elem(load_hp(param, DT, i), load_hp(grad, DT, i), &m, &v, k, one_minus_w1, beta2, eps);
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        store_hp(param, DT, i, p);
    }
}

void launch_adamw(const Ctx *ctx, void *param, const void *grad, float *m, float *v, int dt, int64_t n,
                  const fp8_adamw_consts &k, const fp8_adamw_consts *consts, float beta2, float eps) {
    const bool vec = all_aligned16({param, grad, m, v});
    if (dt == FP8_DTYPE_F32)
        adamw_kernel<FP8_DTYPE_F32><<<grid_for(ctx, vec ? n / 4 + 1 : n, kThreads), kThreads, 0, ctx->stream>>>(
            param, grad, m, v, n, k, consts, beta2, eps, vec);
    else
        adamw_kernel<FP8_DTYPE_BF16><<<grid_for(ctx, vec ? n / 8 + 1 : n, kThreads), kThreads, 0, ctx->stream>>>(
            param, grad, m, v, n, k, consts, beta2, eps, vec);
}

int32_t check_adamw_buffers(const char *fn, int32_t dtype, int64_t n, const void *d_param, const void *d_grad,
                            const float *d_exp_avg, const float *d_exp_avg_sq) {
    FP8_REQUIRE_HP(dtype, "dtype", fn);
    FP8_REQUIRE_N(n, fn);
    FP8_REQUIRE_DATA(d_param, n, fn);
    FP8_REQUIRE_DATA(d_grad, n, fn);
    FP8_REQUIRE_DATA(d_exp_avg, n, fn);
    FP8_REQUIRE_DATA(d_exp_avg_sq, n, fn);
    return FP8_OK;
}

int32_t check_adamw_hyperparameters(const char *fn, float lr, float beta1, float beta2, float eps,
                                    float weight_decay, int64_t step) {
    FP8_REQUIRE(step >= 1, fn, "step must be >= 1, got %lld", (long long)step);
    FP8_REQUIRE(lr >= 0.0f, fn, "lr must be >= 0, got %g", (double)lr);
    FP8_REQUIRE(beta1 >= 0.0f && beta1 < 1.0f, fn, "beta1 must be in [0, 1), got %g", (double)beta1);
    FP8_REQUIRE(beta2 >= 0.0f && beta2 < 1.0f, fn, "beta2 must be in [0, 1), got %g", (double)beta2);
    FP8_REQUIRE(eps >= 0.0f, fn, "eps must be >= 0, got %g", (double)eps);
    FP8_REQUIRE(weight_decay >= 0.0f, fn, "weight_decay must be >= 0, got %g", (double)weight_decay);
    return FP8_OK;
}

}  // namespace
}  // namespace fp8cuda

using namespace fp8cuda;

extern "C" {

FP8_API int32_t fp8_cuda_sgd_step(fp8_cuda_ctx_t c, void *d_param, const void *d_grad, float *d_buf,
                                  int32_t dtype, int64_t n, float lr, float momentum, float dampening,
                                  float weight_decay, int32_t nesterov, int32_t first_step) {
    static const char fn[] = "fp8_cuda_sgd_step";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        FP8_REQUIRE_N(n, fn);
        FP8_REQUIRE_DATA(d_param, n, fn);
        FP8_REQUIRE_DATA(d_grad, n, fn);
        FP8_REQUIRE(momentum == 0.0f || d_buf != NULL || n == 0, fn, "d_buf is NULL but momentum is %g",
                    (double)momentum);
        FP8_REQUIRE(lr >= 0.0f, fn, "lr must be >= 0, got %g", (double)lr);
        FP8_REQUIRE(momentum >= 0.0f, fn, "momentum must be >= 0, got %g", (double)momentum);
        FP8_REQUIRE(weight_decay >= 0.0f, fn, "weight_decay must be >= 0, got %g", (double)weight_decay);
        FP8_REQUIRE(!std::isnan(dampening), fn, "dampening is NaN");
        FP8_REQUIRE(!nesterov || (momentum > 0.0f && dampening == 0.0f), fn,
                    "nesterov needs momentum > 0 and dampening == 0, got momentum %g, dampening %g",
                    (double)momentum, (double)dampening);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        const float keep = 1.0f - dampening;
        const bool vec = all_aligned16({d_param, d_grad, d_buf});
        if (dtype == FP8_DTYPE_F32)
            sgd_kernel<FP8_DTYPE_F32><<<grid_for(ctx, vec ? n / 4 + 1 : n, kThreads), kThreads, 0, ctx->stream>>>(
                d_param, d_grad, d_buf, n, lr, momentum, keep, weight_decay, nesterov != 0, first_step != 0, vec);
        else
            sgd_kernel<FP8_DTYPE_BF16><<<grid_for(ctx, vec ? n / 8 + 1 : n, kThreads), kThreads, 0, ctx->stream>>>(
                d_param, d_grad, d_buf, n, lr, momentum, keep, weight_decay, nesterov != 0, first_step != 0, vec);
        FP8_LAUNCH_CHECK(fn, "sgd_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_adamw_step(fp8_cuda_ctx_t c, void *d_param, const void *d_grad, float *d_exp_avg,
                                    float *d_exp_avg_sq, int32_t dtype, int64_t n, float lr, float beta1,
                                    float beta2, float eps, float weight_decay, int64_t step) {
    static const char fn[] = "fp8_cuda_adamw_step";
    return guard(fn, [&]() -> int32_t {
        int32_t st = check_adamw_buffers(fn, dtype, n, d_param, d_grad, d_exp_avg, d_exp_avg_sq);
        if (st != FP8_OK) return st;
        st = check_adamw_hyperparameters(fn, lr, beta1, beta2, eps, weight_decay, step);
        if (st != FP8_OK) return st;
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        /* fp8_cpu_adamw_step's constants, from the same function */
        const fp8_adamw_consts k = fp8_adamw_constants_of(lr, beta1, beta2, weight_decay, step);
        launch_adamw(ctx, d_param, d_grad, d_exp_avg, d_exp_avg_sq, dtype, n, k, nullptr, beta2, eps);
        FP8_LAUNCH_CHECK(fn, "adamw_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_adamw_constants(float *out, float lr, float beta1, float beta2, float eps,
                                         float weight_decay, int64_t step) {
    static const char fn[] = "fp8_cuda_adamw_constants";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(out, fn);
        int32_t st = check_adamw_hyperparameters(fn, lr, beta1, beta2, eps, weight_decay, step);
        if (st != FP8_OK) return st;
        const fp8_adamw_consts k = fp8_adamw_constants_of(lr, beta1, beta2, weight_decay, step);
        std::memcpy(out, &k, sizeof k);
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_adamw_step_dev(fp8_cuda_ctx_t c, void *d_param, const void *d_grad, float *d_exp_avg,
                                        float *d_exp_avg_sq, int32_t dtype, int64_t n, const float *d_consts,
                                        float beta2, float eps) {
    static const char fn[] = "fp8_cuda_adamw_step_dev";
    return guard(fn, [&]() -> int32_t {
        int32_t st = check_adamw_buffers(fn, dtype, n, d_param, d_grad, d_exp_avg, d_exp_avg_sq);
        if (st != FP8_OK) return st;
        FP8_REQUIRE_PTR(d_consts, fn);
        FP8_REQUIRE(beta2 >= 0.0f && beta2 < 1.0f, fn, "beta2 must be in [0, 1), got %g", (double)beta2);
        FP8_REQUIRE(eps >= 0.0f, fn, "eps must be >= 0, got %g", (double)eps);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        launch_adamw(ctx, d_param, d_grad, d_exp_avg, d_exp_avg_sq, dtype, n, fp8_adamw_consts{},
                     reinterpret_cast<const fp8_adamw_consts *>(d_consts), beta2, eps);
        FP8_LAUNCH_CHECK(fn, "adamw_kernel (device constants)");
        return FP8_OK;
    });
}

}  // extern "C"
