/*
 * optim_test.cpp — optim_kernels.cu against libfp8/src/cpu/optim.c, bit for
 * bit over several steps: SGD with and without momentum, dampening, Nesterov
 * and weight decay; AdamW on both sides of torch's lerp switch (weight < 0.5
 * or not). F32 and BF16 parameters, f32 state.
 */
#include "harness.h"

namespace harness {

namespace {

struct SgdCase {
    float lr, momentum, dampening, wd;
    int nesterov;
};

void sgd() {
    section("optim: sgd");
    const SgdCase cases[] = {{0.1f, 0.0f, 0.0f, 0.0f, 0}, {0.05f, 0.9f, 0.0f, 0.0f, 0}, {0.05f, 0.9f, 0.1f, 1e-2f, 0},
                             {0.01f, 0.8f, 0.0f, 5e-4f, 1}, {0.3f, 0.0f, 0.0f, 0.1f, 0}, {0.0f, 0.5f, 0.5f, 0.0f, 0}};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (const auto &c : cases)
            for (int64_t n : {1, 1000, 9001}) {
                Buf p(dt, n), p_ref(dt, n), buf(FP8_DTYPE_F32, n), buf_ref(FP8_DTYPE_F32, n), g(dt, n);
                fill_random(p, 1.0f, true);
                p_ref.copy_from(p);
                for (int step = 0; step < 3; step++) {
                    fill_random(g, 0.1f, step == 1);
                    float *b = c.momentum != 0.0f ? buf.as<float>() : nullptr;
                    float *br = c.momentum != 0.0f ? buf_ref.as<float>() : nullptr;
                    CUDA_OK(fp8_cuda_sgd_step(ctx, p.p(), g.p(), b, dt, n, c.lr, c.momentum, c.dampening, c.wd, c.nesterov,
                                              step == 0));
                    CPU_OK(fp8_cpu_sgd_step(p_ref.p(), g.p(), br, dt, n, c.lr, c.momentum, c.dampening, c.wd, c.nesterov,
                                            step == 0));
                    char what[128];
                    snprintf(what, sizeof what, "sgd %s lr %g momentum %g dampening %g wd %g nesterov %d step %d",
                             dt_name(dt), c.lr, c.momentum, c.dampening, c.wd, c.nesterov, step);
                    same_bytes(what, p, p_ref);
                    if (b) same_bytes(what, buf, buf_ref);
                }
            }
    float f = 0;
    CUDA_OK(fp8_cuda_sgd_step(ctx, nullptr, nullptr, nullptr, FP8_DTYPE_F32, 0, 0.1f, 0.9f, 0, 0, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_buf is NULL", fp8_cuda_sgd_step(ctx, &f, &f, nullptr, FP8_DTYPE_F32, 1, 0.1f, 0.9f, 0, 0, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "lr", fp8_cuda_sgd_step(ctx, &f, &f, &f, FP8_DTYPE_F32, 1, -0.1f, 0, 0, 0, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "momentum", fp8_cuda_sgd_step(ctx, &f, &f, &f, FP8_DTYPE_F32, 1, 0.1f, -1, 0, 0, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "weight_decay", fp8_cuda_sgd_step(ctx, &f, &f, &f, FP8_DTYPE_F32, 1, 0.1f, 0, 0, -1, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dampening is NaN", fp8_cuda_sgd_step(ctx, &f, &f, &f, FP8_DTYPE_F32, 1, 0.1f, 0, NAN, 0, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "nesterov", fp8_cuda_sgd_step(ctx, &f, &f, &f, FP8_DTYPE_F32, 1, 0.1f, 0.9f, 0.1f, 0, 1, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "dtype", fp8_cuda_sgd_step(ctx, &f, &f, &f, FP8_DTYPE_I32, 1, 0.1f, 0, 0, 0, 0, 1));
}

void adamw() {
    section("optim: adamw");
    struct Case {
        float lr, beta1, beta2, eps, wd;
    };
    const Case cases[] = {{1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f}, {3e-2f, 0.3f, 0.95f, 1e-6f, 0.0f}, {1e-1f, 0.0f, 0.0f, 0.0f, 0.1f},
                          {1e-3f, 0.5f, 0.9f, 1e-8f, 0.5f}};
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (const auto &c : cases)
            for (int64_t n : {1, 1000, 9001}) {
                Buf p(dt, n), p_ref(dt, n), m(FP8_DTYPE_F32, n), v(FP8_DTYPE_F32, n), m_ref(FP8_DTYPE_F32, n),
                    v_ref(FP8_DTYPE_F32, n), g(dt, n);
                fill_random(p, 1.0f, true);
                p_ref.copy_from(p);
                m.fill_bytes(0);
                v.fill_bytes(0);
                m_ref.fill_bytes(0);
                v_ref.fill_bytes(0);
                for (int64_t step = 1; step <= 3; step++) {
                    fill_random(g, 0.1f, step == 2);
                    CUDA_OK(fp8_cuda_adamw_step(ctx, p.p(), g.p(), m.as<float>(), v.as<float>(), dt, n, c.lr, c.beta1, c.beta2,
                                                c.eps, c.wd, step));
                    CPU_OK(fp8_cpu_adamw_step(p_ref.p(), g.p(), m_ref.as<float>(), v_ref.as<float>(), dt, n, c.lr, c.beta1,
                                              c.beta2, c.eps, c.wd, step));
                    char what[128];
                    snprintf(what, sizeof what, "adamw %s lr %g betas %g %g eps %g wd %g step %lld", dt_name(dt), c.lr,
                             c.beta1, c.beta2, c.eps, c.wd, (long long)step);
                    same_bytes(what, p, p_ref);
                    same_bytes(what, m, m_ref);
                    same_bytes(what, v, v_ref);
                }
            }

    section("optim: adamw with device constants (the CUDA-graph form)");
    for (int32_t dt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (const auto &c : cases)
            for (int64_t n : {1, 9001}) {
                Buf p(dt, n), p_ref(dt, n), m(FP8_DTYPE_F32, n), v(FP8_DTYPE_F32, n), m_ref(FP8_DTYPE_F32, n),
                    v_ref(FP8_DTYPE_F32, n), g(dt, n), k(FP8_DTYPE_F32, 5);
                fill_random(p, 1.0f, true);
                p_ref.copy_from(p);
                for (Buf *b : {&m, &v, &m_ref, &v_ref}) b->fill_bytes(0);
                for (int64_t step = 1; step <= 3; step++) {
                    fill_random(g, 0.1f, step == 2);
                    float consts[5];
                    CUDA_OK(fp8_cuda_adamw_constants(consts, c.lr, c.beta1, c.beta2, c.eps, c.wd, step));
                    for (int i = 0; i < 5; i++) k.set(i, consts[i]);
                    CUDA_OK(fp8_cuda_adamw_step_dev(ctx, p.p(), g.p(), m.as<float>(), v.as<float>(), dt, n, k.as<float>(),
                                                    c.beta2, c.eps));
                    CPU_OK(fp8_cpu_adamw_step(p_ref.p(), g.p(), m_ref.as<float>(), v_ref.as<float>(), dt, n, c.lr, c.beta1,
                                              c.beta2, c.eps, c.wd, step));
                    char what[128];
                    snprintf(what, sizeof what, "adamw_step_dev %s lr %g betas %g %g step %lld", dt_name(dt), c.lr,
                             c.beta1, c.beta2, (long long)step);
                    same_bytes(what, p, p_ref);
                    same_bytes(what, m, m_ref);
                    same_bytes(what, v, v_ref);
                }
            }
    float f = 0, five[5];
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "step", fp8_cuda_adamw_constants(five, 0.1f, 0.9f, 0.99f, 0, 0, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "out is NULL", fp8_cuda_adamw_constants(nullptr, 0.1f, 0.9f, 0.99f, 0, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_consts is NULL",
               fp8_cuda_adamw_step_dev(ctx, &f, &f, &f, &f, FP8_DTYPE_F32, 1, nullptr, 0.99f, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "beta2", fp8_cuda_adamw_step_dev(ctx, &f, &f, &f, &f, FP8_DTYPE_F32, 1, &f, 1.5f, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "step", fp8_cuda_adamw_step(ctx, &f, &f, &f, &f, FP8_DTYPE_F32, 1, 0.1f, 0.9f, 0.99f, 0, 0, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "beta1", fp8_cuda_adamw_step(ctx, &f, &f, &f, &f, FP8_DTYPE_F32, 1, 0.1f, 1.0f, 0.99f, 0, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "beta2", fp8_cuda_adamw_step(ctx, &f, &f, &f, &f, FP8_DTYPE_F32, 1, 0.1f, 0.9f, -0.1f, 0, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "eps", fp8_cuda_adamw_step(ctx, &f, &f, &f, &f, FP8_DTYPE_F32, 1, 0.1f, 0.9f, 0.9f, -1, 0, 1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_exp_avg_sq is NULL",
               fp8_cuda_adamw_step(ctx, &f, &f, &f, nullptr, FP8_DTYPE_F32, 1, 0.1f, 0.9f, 0.9f, 0, 0, 1));
}

}  // namespace

void test_optim() {
    sgd();
    adamw();
}

}  // namespace harness
