/*
 * rowwise.c — axiswise (one scale per row) fp8 scaling on the CPU:
 * a row-wise dynamic quantize and a row-scaled GEMM emulated exactly.
 * Both compose the library's own kernels: per-row fp8_cpu_amax /
 * fp8_cpu_quantize (vectorised, run one row per thread) and fp8_cpu_convert +
 * fp8_cpu_matmul (oneDNN) with our epilogue applying the row and column scales.
 */
#include <stdlib.h>

#include "fp8_ref.h"
#include "internal.h"

int32_t fp8_cpu_quantize_rowwise(void *dst_fp8, float *scale, int32_t fp8_dtype, const void *src,
                                 int32_t src_dtype, int64_t rows, int64_t cols, int32_t round_pow2) {
    const char *fn = "fp8_cpu_quantize_rowwise";
    FP8_REQUIRE_PTR(scale, fn);
    FP8_REQUIRE(fp8_is_fp8_cpu(fp8_dtype), fn, "fp8_dtype %d (%s) is not a float8 dtype", fp8_dtype, fp8_dtype_name(fp8_dtype));
    FP8_REQUIRE(fp8_is_float_hp(src_dtype), fn, "src_dtype %s is not float32 or bfloat16", fp8_dtype_name(src_dtype));
    FP8_REQUIRE(fp8_count_ok(rows, cols), fn, "rows %lld and cols %lld must be >= 0 with at most 2^46 elements", (long long)rows, (long long)cols);
    if (rows * cols > 0) {
        FP8_REQUIRE_PTR(dst_fp8, fn);
        FP8_REQUIRE_PTR(src, fn);
    }
    const int64_t es = fp8_dtype_size(src_dtype);
    int32_t status = FP8_OK;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; ++r) {
        const void *row = (const uint8_t *)src + r * cols * es;
        float amax = 0.0f;
        int32_t st = fp8_cpu_amax(&amax, row, src_dtype, cols);
        float s = fp8_ref_scale_from_amax(amax, fp8_dtype, 0);
        if (round_pow2) s = fp8_ref_round_down_pow2(s);
        scale[r] = s;
        if (st == FP8_OK) st = fp8_cpu_quantize((uint8_t *)dst_fp8 + r * cols, fp8_dtype, row, src_dtype, cols, &scale[r]);
        if (st != FP8_OK) {
#pragma omp critical
            status = st;
        }
    }
    if (status != FP8_OK) return fp8_fail(status, fn, "row kernel failed");
    return FP8_OK;
}

int32_t fp8_cpu_scaled_mm_rowwise(void *c, int32_t c_dtype, const void *a, int32_t a_dtype,
                                  const void *b, int32_t b_dtype, const float *scale_a,
                                  const float *scale_b, const void *bias, int32_t bias_dtype,
                                  int64_t M, int64_t K, int64_t N, int32_t trans_a, int32_t trans_b) {
    const char *fn = "fp8_cpu_scaled_mm_rowwise";
    FP8_REQUIRE(fp8_is_fp8_cpu(a_dtype) && fp8_is_fp8_cpu(b_dtype), fn, "a and b must be float8, got %s and %s",
                fp8_dtype_name(a_dtype), fp8_dtype_name(b_dtype));
    FP8_REQUIRE(fp8_is_float_hp(c_dtype), fn, "c_dtype %s is not float32 or bfloat16", fp8_dtype_name(c_dtype));
    FP8_REQUIRE(M > 0 && K > 0 && N > 0, fn, "M, K, N must be > 0, got %lld, %lld, %lld", (long long)M, (long long)K, (long long)N);
    FP8_REQUIRE_PTR(c, fn);
    FP8_REQUIRE_PTR(a, fn);
    FP8_REQUIRE_PTR(b, fn);
    FP8_REQUIRE_PTR(scale_a, fn);
    FP8_REQUIRE_PTR(scale_b, fn);
    FP8_REQUIRE(!bias || fp8_is_float_hp(bias_dtype), fn, "bias_dtype %s is not float32 or bfloat16", fp8_dtype_name(bias_dtype));
    void *a16 = NULL, *b16 = NULL, *acc = NULL;
    int32_t st = fp8_alloc(M * K * 2, &a16);
    if (st == FP8_OK) st = fp8_alloc(K * N * 2, &b16);
    if (st == FP8_OK) st = fp8_alloc(M * N * 4, &acc);
    if (st == FP8_OK) st = fp8_cpu_convert(a16, FP8_DTYPE_BF16, a, a_dtype, M * K);
    if (st == FP8_OK) st = fp8_cpu_convert(b16, FP8_DTYPE_BF16, b, b_dtype, K * N);
    if (st == FP8_OK)
        st = fp8_cpu_matmul(acc, FP8_DTYPE_F32, a16, b16, FP8_DTYPE_BF16, NULL, 0, 1, 1, M, K, N, trans_a, trans_b, 1.0f, 0.0f);
    if (st == FP8_OK) {
        const float *accf = acc;
#pragma omp parallel for schedule(static) if (M * N > 65536)
        for (int64_t i = 0; i < M; ++i) {
            const float ia = 1.0f / scale_a[i];
            for (int64_t j = 0; j < N; ++j) {
                float v = accf[i * N + j] * ia * (1.0f / scale_b[j]);
                if (bias) v += fp8_load_hp(bias, bias_dtype, j);
                fp8_store_hp(c, c_dtype, i * N + j, v);
            }
        }
    }
    fp8_free(a16);
    fp8_free(b16);
    fp8_free(acc);
    return st; /* a failing inner call already recorded its message */
}
