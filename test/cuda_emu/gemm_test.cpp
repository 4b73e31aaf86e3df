/*
 * gemm_test.cpp — gemm.cu on the emulated cuBLASLt (libfp8/src/cuda/emu/
 * cublaslt.cpp, which multiplies with libfp8's CPU GEMMs): the row-major to
 * column-major mapping, plan caching, scale pointers (tensorwise 1/scale on
 * the device, row-wise outer vectors), fused and separate bias, and the
 * row-wise paths with their fallbacks, against fp8_cpu_scaled_mm,
 * fp8_cpu_scaled_mm_rowwise and fp8_cpu_matmul.
 */
#include "harness.h"

namespace harness {

namespace {

/* x (n) random values quantized to fp8 with `scale`. */
Buf random_fp8(int32_t f8, int64_t n, float scale) {
    Buf x(FP8_DTYPE_F32, n), q(f8, n);
    fill_random(x);
    CPU_OK(fp8_cpu_quantize(q.p(), f8, x.p(), FP8_DTYPE_F32, n, &scale));
    return q;
}

const int64_t kShapes[][3] = {/* M, K, N */ {1, 16, 16}, {5, 32, 48}, {64, 128, 32}, {33, 64, 16}};
const int32_t kFp8Pairs[][2] = {{FP8_DTYPE_E4M3FN, FP8_DTYPE_E4M3FN}, {FP8_DTYPE_E4M3FN, FP8_DTYPE_E5M2},
                                {FP8_DTYPE_E5M2, FP8_DTYPE_E4M3FN}};

void scaled_mm() {
    section("gemm: scaled_mm");
    int64_t plans_before = 0, plans_after = 0;
    CUDA_OK(fp8_cuda_gemm_plans(ctx, &plans_before));
    for (const auto &sh : kShapes)
        for (const auto &ab : kFp8Pairs)
            for (int32_t cdt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
                for (int bias_kind = 0; bias_kind < 3; bias_kind++) { /* none, bf16 (fused), f32 (added after) */
                    const int64_t M = sh[0], K = sh[1], N = sh[2];
                    Buf a = random_fp8(ab[0], M * K, 20.0f), b = random_fp8(ab[1], N * K, 7.0f);
                    Buf sa(FP8_DTYPE_F32, 1), sb(FP8_DTYPE_F32, 1), c(cdt, M * N), ref(cdt, M * N);
                    sa.set(0, 20.0f);
                    sb.set(0, 7.0f);
                    const int32_t bias_dt = bias_kind == 2 ? FP8_DTYPE_F32 : FP8_DTYPE_BF16;
                    Buf bias(bias_dt, N);
                    fill_random(bias);
                    const void *bp = bias_kind ? bias.p() : nullptr;
                    for (int fast : {0, 1}) {
                        CUDA_OK(fp8_cuda_scaled_mm(ctx, c.p(), cdt, a.p(), ab[0], b.p(), ab[1], sa.as<float>(), sb.as<float>(),
                                                   bp, bias_dt, M, K, N, fast));
                        CPU_OK(fp8_cpu_scaled_mm(ref.p(), cdt, a.p(), ab[0], b.p(), ab[1], sa.as<float>(), sb.as<float>(), bp,
                                                 bias_dt, M, K, N, 0, 1));
                        char what[128];
                        snprintf(what, sizeof what, "scaled_mm (%lld,%lld,%lld) %s x %s -> %s bias %d fast %d", (long long)M,
                                 (long long)K, (long long)N, dt_name(ab[0]), dt_name(ab[1]), dt_name(cdt), bias_kind, fast);
                        /* one rounding on both sides, also for a bf16 result with an f32 bias (issue 16:
                         * it used to be rounded twice on the device, GEMM then bias add) */
                        same_values(what, c, ref);
                    }
                }
    CUDA_OK(fp8_cuda_gemm_plans(ctx, &plans_after));
    /* one plan per distinct problem; repeating a call reuses it */
    Buf a = random_fp8(FP8_DTYPE_E4M3FN, 16 * 16, 1.0f), b = random_fp8(FP8_DTYPE_E4M3FN, 16 * 16, 1.0f);
    Buf s(FP8_DTYPE_F32, 1), c(FP8_DTYPE_F32, 256);
    s.set(0, 1.0f);
    int64_t p1, p2;
    CUDA_OK(fp8_cuda_scaled_mm(ctx, c.p(), FP8_DTYPE_F32, a.p(), FP8_DTYPE_E4M3FN, b.p(), FP8_DTYPE_E4M3FN, s.as<float>(),
                               s.as<float>(), nullptr, 0, 16, 16, 16, 0));
    CUDA_OK(fp8_cuda_gemm_plans(ctx, &p1));
    CUDA_OK(fp8_cuda_scaled_mm(ctx, c.p(), FP8_DTYPE_F32, a.p(), FP8_DTYPE_E4M3FN, b.p(), FP8_DTYPE_E4M3FN, s.as<float>(),
                               s.as<float>(), nullptr, 0, 16, 16, 16, 0));
    CUDA_OK(fp8_cuda_gemm_plans(ctx, &p2));
    CHECK(plans_after > plans_before && p1 == p2, "plan cache: %lld -> %lld plans, then %lld -> %lld", (long long)plans_before,
          (long long)plans_after, (long long)p1, (long long)p2);

    const int32_t e4 = FP8_DTYPE_E4M3FN, e5 = FP8_DTYPE_E5M2;
    float *f = s.as<float>();
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "multiples of 16", fp8_cuda_scaled_mm(ctx, c.p(), 0, a.p(), e4, b.p(), e4, f, f, nullptr, 0, 16, 8, 16, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "both be float8_e5m2", fp8_cuda_scaled_mm(ctx, c.p(), 0, a.p(), e5, b.p(), e5, f, f, nullptr, 0, 16, 16, 16, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "16-byte aligned",
               fp8_cuda_scaled_mm(ctx, c.p(), 0, (char *)a.p() + 1, e4, b.p(), e4, f, f, nullptr, 0, 15, 16, 16, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "c_dtype", fp8_cuda_scaled_mm(ctx, c.p(), e4, a.p(), e4, b.p(), e4, f, f, nullptr, 0, 16, 16, 16, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, ">= 1", fp8_cuda_scaled_mm(ctx, c.p(), 0, a.p(), e4, b.p(), e4, f, f, nullptr, 0, 0, 16, 16, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_scale_b", fp8_cuda_scaled_mm(ctx, c.p(), 0, a.p(), e4, b.p(), e4, f, nullptr, nullptr, 0, 16, 16, 16, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "bias_dtype", fp8_cuda_scaled_mm(ctx, c.p(), 0, a.p(), e4, b.p(), e4, f, f, f, e4, 16, 16, 16, 0));
}

/* Row-wise scaled GEMMs on a fresh context, with the emulated cuBLASLt taking
 * outer-vector scales (mode 0), having no algorithm for them (1), or refusing
 * them at launch (2). */
void scaled_mm_rowwise() {
    section("gemm: scaled_mm_rowwise");
    for (int mode : {0, 1, 2}) {
        CHECK(fp8_cuda_emu_set_outer_vec(mode) == FP8_OK, "fp8_cuda_emu_set_outer_vec(%d)", mode);
        fp8_cuda_ctx_t c2 = nullptr;
        CUDA_OK(fp8_cuda_ctx_create(0, &c2));
        MemoryWatch watch;
        for (int32_t path : {FP8_CUDA_ROWWISE_AUTO, FP8_CUDA_ROWWISE_OUTER_VEC, FP8_CUDA_ROWWISE_EPILOGUE}) {
            CUDA_OK(fp8_cuda_set_rowwise_gemm(c2, path));
            for (const auto &sh : kShapes)
                for (int32_t cdt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
                    for (int bias_kind = 0; bias_kind < 3; bias_kind++) {
                        const int64_t M = sh[0], K = sh[1], N = sh[2];
                        Buf a = random_fp8(FP8_DTYPE_E4M3FN, M * K, 30.0f), b = random_fp8(FP8_DTYPE_E5M2, N * K, 3.0f);
                        Buf sa(FP8_DTYPE_F32, M), sb(FP8_DTYPE_F32, N), c(cdt, M * N), ref(cdt, M * N);
                        for (int64_t i = 0; i < M; i++) sa.set(i, uniform(1.0f, 60.0f));
                        for (int64_t j = 0; j < N; j++) sb.set(j, uniform(0.5f, 5.0f));
                        const int32_t bias_dt = bias_kind == 2 ? FP8_DTYPE_F32 : FP8_DTYPE_BF16;
                        Buf bias(bias_dt, N);
                        fill_random(bias);
                        const void *bp = bias_kind ? bias.p() : nullptr;
                        const int32_t st = fp8_cuda_scaled_mm_rowwise(c2, c.p(), cdt, a.p(), FP8_DTYPE_E4M3FN, b.p(), FP8_DTYPE_E5M2,
                                                                      sa.as<float>(), sb.as<float>(), bp, bias_dt, M, K, N, 0);
                        char what[128];
                        snprintf(what, sizeof what, "scaled_mm_rowwise path %d cublasLt mode %d (%lld,%lld,%lld) -> %s bias %d",
                                 path, mode, (long long)M, (long long)K, (long long)N, dt_name(cdt), bias_kind);
                        if (path == FP8_CUDA_ROWWISE_OUTER_VEC && mode != 0) {
                            CHECK(st == FP8_ERR_UNSUPPORTED && strstr(fp8_cuda_last_error(), "outer-vector"),
                                  "%s: status %d, %s", what, st, fp8_cuda_last_error());
                            continue;
                        }
                        CHECK(st == FP8_OK, "%s: status %d, %s", what, st, fp8_cuda_last_error());
                        CPU_OK(fp8_cpu_scaled_mm_rowwise(ref.p(), cdt, a.p(), FP8_DTYPE_E4M3FN, b.p(), FP8_DTYPE_E5M2,
                                                         sa.as<float>(), sb.as<float>(), bp, bias_dt, M, K, N, 0, 1));
                        close(what, c, ref, cdt == FP8_DTYPE_F32 ? 1e-5 : 8e-3, cdt == FP8_DTYPE_F32 ? 1e-5 : 1e-2);
                    }
        }
        watch.check("row-wise GEMM temporaries");
        if (mode != 0) {
            /* AUTO after a cached refusal falls back without allocating the outer-vector
             * temporary first (issue 16): an armed cudaMallocAsync failure stays pending
             * (an f32 c needs no temporary on the epilogue path). */
            CUDA_OK(fp8_cuda_set_rowwise_gemm(c2, FP8_CUDA_ROWWISE_AUTO));
            const int64_t M = 16, K = 32, N = 16;
            Buf a = random_fp8(FP8_DTYPE_E4M3FN, M * K, 30.0f), b = random_fp8(FP8_DTYPE_E4M3FN, N * K, 3.0f);
            Buf sa(FP8_DTYPE_F32, M), sb(FP8_DTYPE_F32, N), c(FP8_DTYPE_F32, M * N);
            for (int64_t i = 0; i < M; i++) sa.set(i, 2.0f);
            for (int64_t j = 0; j < N; j++) sb.set(j, 4.0f);
            CUDA_OK(fp8_cuda_scaled_mm_rowwise(c2, c.p(), FP8_DTYPE_F32, a.p(), FP8_DTYPE_E4M3FN, b.p(), FP8_DTYPE_E4M3FN,
                                               sa.as<float>(), sb.as<float>(), nullptr, 0, M, K, N, 0));
            fp8_cuda_emu_fail_call("cudaMallocAsync", 0, (int32_t)cudaErrorMemoryAllocation);
            CUDA_OK(fp8_cuda_scaled_mm_rowwise(c2, c.p(), FP8_DTYPE_F32, a.p(), FP8_DTYPE_E4M3FN, b.p(), FP8_DTYPE_E4M3FN,
                                               sa.as<float>(), sb.as<float>(), nullptr, 0, M, K, N, 0));
            int64_t pending = 0;
            fp8_cuda_emu_take_pending_failures(&pending);
            CHECK(pending == 1, "rowwise AUTO after a cached refusal (mode %d) still allocated a temporary", mode);
        }
        CUDA_OK(fp8_cuda_ctx_destroy(c2));
    }
    fp8_cuda_emu_set_outer_vec(0);
    CHECK(fp8_cuda_emu_set_outer_vec(3) == FP8_ERR_INVALID_ARG, "fp8_cuda_emu_set_outer_vec(3) accepted");
    float f = 1;
    uint8_t b[256] __attribute__((aligned(16)));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "multiples of 16",
               fp8_cuda_scaled_mm_rowwise(ctx, b, 0, b, FP8_DTYPE_E4M3FN, b, FP8_DTYPE_E4M3FN, &f, &f, nullptr, 0, 1, 16, 4, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ctx is NULL",
               fp8_cuda_scaled_mm_rowwise(nullptr, b, 0, b, FP8_DTYPE_E4M3FN, b, FP8_DTYPE_E4M3FN, &f, &f, nullptr, 0, 1, 16, 16, 0));
}

void matmul() {
    section("gemm: matmul");
    const int64_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {16, 32, 8}, {33, 17, 65}};
    const int64_t batches[][2] = {{1, 1}, {3, 3}, {3, 1}, {1, 3}};
    int cases = 0;
    for (int32_t abdt : {FP8_DTYPE_F32, FP8_DTYPE_BF16})
        for (int32_t cdt : {FP8_DTYPE_F32, FP8_DTYPE_BF16}) {
            if (abdt == FP8_DTYPE_F32 && cdt == FP8_DTYPE_BF16) continue;
            for (const auto &sh : shapes)
                for (const auto &bt : batches)
                    for (int t = 0; t < 4; t++) {
                        const int64_t M = sh[0], K = sh[1], N = sh[2], B = std::max(bt[0], bt[1]);
                        const int ta = t & 1, tb = t >> 1;
                        const int bias_kind = (int)(rng() % 3); /* none, c's dtype (fused), the other (added after) */
                        const float alpha = rng() % 2 ? 1.0f : 0.5f, beta = rng() % 3 == 0 ? 1.0f : 0.0f;
                        Buf a(abdt, bt[0] * M * K), b(abdt, bt[1] * K * N), c(cdt, B * M * N), ref(cdt, B * M * N);
                        const int32_t bias_dt = bias_kind == 1 ? cdt : cdt == FP8_DTYPE_F32 ? FP8_DTYPE_BF16 : FP8_DTYPE_F32;
                        Buf bias(bias_dt, N);
                        fill_random(a);
                        fill_random(b);
                        fill_random(c);
                        fill_random(bias);
                        ref.copy_from(c);
                        const void *bp = bias_kind ? bias.p() : nullptr;
                        CUDA_OK(fp8_cuda_matmul(ctx, c.p(), cdt, a.p(), b.p(), abdt, bp, bias_dt, bt[0], bt[1], M, K, N, ta, tb,
                                                alpha, beta));
                        CPU_OK(fp8_cpu_matmul(ref.p(), cdt, a.p(), b.p(), abdt, bp, bias_dt, bt[0], bt[1], M, K, N, ta, tb, alpha,
                                              beta));
                        char what[160];
                        snprintf(what, sizeof what, "matmul %s -> %s batch (%lld,%lld) (%lld,%lld,%lld) trans %d%d bias %d alpha %g beta %g",
                                 dt_name(abdt), dt_name(cdt), (long long)bt[0], (long long)bt[1], (long long)M, (long long)K,
                                 (long long)N, ta, tb, bias_kind, alpha, beta);
                        /* bit for bit: every bias rounds once with c (issue 16) */
                        same_values(what, c, ref);
                        cases++;
                    }
        }
    float f;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "need a float32 c",
               fp8_cuda_matmul(ctx, &f, FP8_DTYPE_BF16, &f, &f, FP8_DTYPE_F32, nullptr, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "beta must be 0 or 1",
               fp8_cuda_matmul(ctx, &f, FP8_DTYPE_F32, &f, &f, FP8_DTYPE_F32, nullptr, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0.5f));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "batch_a and batch_b",
               fp8_cuda_matmul(ctx, &f, FP8_DTYPE_F32, &f, &f, FP8_DTYPE_F32, nullptr, 0, 2, 3, 1, 1, 1, 0, 0, 1, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ab_dtype",
               fp8_cuda_matmul(ctx, &f, FP8_DTYPE_F32, &f, &f, FP8_DTYPE_E4M3FN, nullptr, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_b", fp8_cuda_matmul(ctx, &f, FP8_DTYPE_F32, &f, nullptr, FP8_DTYPE_F32, nullptr, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0));
}

}  // namespace

void test_gemm() {
    scaled_mm();
    scaled_mm_rowwise();
    matmul();
}

}  // namespace harness
