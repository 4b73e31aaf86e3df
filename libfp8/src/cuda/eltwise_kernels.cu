/*
 * eltwise_kernels.cu — the few elementwise kernels a Linear's forward and
 * backward need on the device (bias add, bias gradient), plus fill and a
 * counter-based randn for tests and benchmarks. F32 or BF16, f32 arithmetic.
 */
#include "cuda_common.cuh"

namespace fp8cuda {
namespace {

constexpr int kThreads = 256;

__global__ void fill_kernel(void *dst, int dt, int64_t n, uint32_t bits) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (dt == FP8_DTYPE_BF16)
            ((uint16_t *)dst)[i] = (uint16_t)bits;
        else
            ((uint32_t *)dst)[i] = bits; /* F32 and I32 */
    }
}

/* splitmix64: a well-mixed 64-bit hash of (seed, index). */
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* dst[i] <- mean + std * normal(seed, i) by Box-Muller on one hash per element. */
__global__ void randn_kernel(void *dst, int dt, int64_t n, uint64_t seed, float mean, float std) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const uint64_t key = mix64(seed);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const uint64_t h = mix64(key ^ (uint64_t)i);
        const float u1 = ((uint32_t)(h >> 40) + 1u) * (1.0f / 16777217.0f); /* (0, 1) */
        const float u2 = (uint32_t)(h & 0xffffffu) * (1.0f / 16777216.0f);  /* [0, 1) */
        const float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
        store_hp(dst, dt, i, mean + std * z);
    }
}

/* y (rows, cols) += bias (cols). blockIdx.y walks rows, x covers columns. */
__global__ void bias_add_kernel(void *y, int y_dt, const void *bias, int bias_dt, int64_t rows,
                                int64_t cols) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const float b = load_hp(bias, bias_dt, c);
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const int64_t i = r * cols + c;
        store_hp(y, y_dt, i, load_hp(y, y_dt, i) + b);
    }
}

/* Column sums of dy (rows, cols): block (32, 8) takes 32 columns and one of
 * gridDim.y row slices; its 8 row lanes are summed in shared memory. With one
 * slice the sum goes straight to out, else to partial (slices, cols) in f32. */
__global__ void column_sum_kernel(void *out, int out_dt, float *partial, const void *dy, int dy_dt,
                                  int64_t rows, int64_t cols, int64_t rows_per_slice) {
    __shared__ float acc[8][33];
    const int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
    const int64_t r_begin = (int64_t)blockIdx.y * rows_per_slice;
    const int64_t r_end = min(rows, r_begin + rows_per_slice);
    float s = 0.0f;
    if (c < cols)
        for (int64_t r = r_begin + threadIdx.y; r < r_end; r += 8) s += load_hp(dy, dy_dt, r * cols + c);
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || c >= cols) return;
    float t = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; k++) t += acc[k][threadIdx.x];
    if (gridDim.y == 1)
        store_hp(out, out_dt, c, t);
    else
        partial[(int64_t)blockIdx.y * cols + c] = t;
}

__global__ void sum_slices_kernel(void *out, int out_dt, const float *partial, int64_t slices,
                                  int64_t cols) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float t = 0.0f;
    for (int64_t k = 0; k < slices; k++) t += partial[k * cols + c];
    store_hp(out, out_dt, c, t);
}

}  // namespace
}  // namespace fp8cuda

using namespace fp8cuda;

extern "C" {

FP8_API int32_t fp8_cuda_fill(fp8_cuda_ctx_t c, void *d_dst, int32_t dtype, int64_t n, double value) {
    static const char fn[] = "fp8_cuda_fill";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE(fp8_is_float_hp(dtype) || dtype == FP8_DTYPE_I32, fn,
                    "dtype must be float32, bfloat16 or int32, got %s (%d)", fp8_dtype_name(dtype), (int)dtype);
        FP8_REQUIRE_N(n, fn);
        FP8_REQUIRE_DATA(d_dst, n, fn);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        uint32_t bits;
        if (dtype == FP8_DTYPE_I32) {
            int32_t v = (int32_t)value;
            memcpy(&bits, &v, 4);
        } else {
            float f = (float)value;
            memcpy(&bits, &f, 4);
            if (dtype == FP8_DTYPE_BF16) bits = fp8_f32_to_bf16(f);
        }
        fill_kernel<<<grid_for(ctx, n, kThreads * 4), kThreads, 0, ctx->stream>>>(d_dst, dtype, n, bits);
        FP8_LAUNCH_CHECK(fn, "fill_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_randn(fp8_cuda_ctx_t c, void *d_dst, int32_t dtype, int64_t n, int64_t seed,
                               float mean, float std) {
    static const char fn[] = "fp8_cuda_randn";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        FP8_REQUIRE_N(n, fn);
        FP8_REQUIRE_DATA(d_dst, n, fn);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        randn_kernel<<<grid_for(ctx, n, kThreads * 4), kThreads, 0, ctx->stream>>>(d_dst, dtype, n,
                                                                                   (uint64_t)seed, mean, std);
        FP8_LAUNCH_CHECK(fn, "randn_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_bias_add(fp8_cuda_ctx_t c, void *d_y, int32_t y_dtype, const void *d_bias,
                                  int32_t bias_dtype, int64_t rows, int64_t cols) {
    static const char fn[] = "fp8_cuda_bias_add";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(y_dtype, "y_dtype", fn);
        FP8_REQUIRE_HP(bias_dtype, "bias_dtype", fn);
        FP8_REQUIRE(rows >= 0 && cols >= 0, fn, "rows and cols must be >= 0, got (%lld, %lld)",
                    (long long)rows, (long long)cols);
        FP8_REQUIRE_DATA(d_y, rows * cols, fn);
        FP8_REQUIRE_DATA(d_bias, cols, fn);
        ENTER(fn, c, ctx);
        if (rows == 0 || cols == 0) return FP8_OK;
        const unsigned gx = (unsigned)((cols + kThreads - 1) / kThreads);
        int64_t gy = ((int64_t)ctx->sm_count * 16 + gx - 1) / gx;
        gy = gy < 1 ? 1 : gy > rows ? rows : gy > 65535 ? 65535 : gy;
        bias_add_kernel<<<dim3(gx, (unsigned)gy), kThreads, 0, ctx->stream>>>(d_y, y_dtype, d_bias, bias_dtype,
                                                                             rows, cols);
        FP8_LAUNCH_CHECK(fn, "bias_add_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_bias_grad(fp8_cuda_ctx_t c, void *d_dbias, int32_t dbias_dtype,
                                   const void *d_dy, int32_t dy_dtype, int64_t rows, int64_t cols) {
    static const char fn[] = "fp8_cuda_bias_grad";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dbias_dtype, "dbias_dtype", fn);
        FP8_REQUIRE_HP(dy_dtype, "dy_dtype", fn);
        FP8_REQUIRE(rows >= 0 && cols >= 0, fn, "rows and cols must be >= 0, got (%lld, %lld)",
                    (long long)rows, (long long)cols);
        FP8_REQUIRE_DATA(d_dbias, cols, fn);
        FP8_REQUIRE_DATA(d_dy, rows * cols, fn);
        ENTER(fn, c, ctx);
        if (cols == 0) return FP8_OK;
        const int64_t col_blocks = (cols + 31) / 32;
        /* Enough row slices to fill the GPU about 4 times over, each >= 64 rows,
         * partial sums fitting in the (stream-ordered, idle here) GEMM workspace. */
        int64_t slices = ((int64_t)ctx->sm_count * 4 + col_blocks - 1) / col_blocks;
        slices = std::min<int64_t>(slices, (rows + 63) / 64);
        slices = std::min<int64_t>(slices, (int64_t)(ctx->workspace_bytes / sizeof(float)) / cols);
        slices = std::max<int64_t>(std::min<int64_t>(slices, 65535), 1);
        const int64_t rows_per_slice = rows == 0 ? 1 : (rows + slices - 1) / slices;
        float *partial = (float *)ctx->workspace;
        column_sum_kernel<<<dim3((unsigned)col_blocks, (unsigned)slices), dim3(32, 8), 0, ctx->stream>>>(
            d_dbias, dbias_dtype, partial, d_dy, dy_dtype, rows, cols, rows_per_slice);
        FP8_LAUNCH_CHECK(fn, "column_sum_kernel");
        if (slices > 1) {
            sum_slices_kernel<<<(unsigned)((cols + kThreads - 1) / kThreads), kThreads, 0, ctx->stream>>>(
                d_dbias, dbias_dtype, partial, slices, cols);
            FP8_LAUNCH_CHECK(fn, "sum_slices_kernel");
        }
        return FP8_OK;
    });
}

}  // extern "C"
