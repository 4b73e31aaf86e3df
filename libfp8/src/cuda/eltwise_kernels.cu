/*
 * eltwise_kernels.cu — the few elementwise kernels a Linear's forward and
 * backward need on the device (bias add, bias gradient), plus fill and a
 * counter-based randn for tests and benchmarks. F32 or BF16, f32 arithmetic.
 * bias add and bias gradient are templated on the streamed dtype with 16-byte
 * vectors of neighbouring columns (issue 16); fill stores 16-byte units on an
 * aligned buffer; randn (tests and benchmarks only) stays one element per thread.
 */
#include "cuda_common.cuh"

namespace fp8cuda {
namespace {

constexpr int kThreads = 256;

/* dst (nv 16-byte units) <- word repeated: the bulk of fill on a 16-byte
 * aligned buffer; fill_kernel writes the tail. */
__global__ void fill_vec_kernel(uint4 *dst, int64_t nv, uint32_t word) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const uint4 v = make_uint4(word, word, word, word);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += stride) dst[i] = v;
}

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

/* V = kVec<DT> neighbouring elements of p from index i into x (nc of them valid,
 * the rest 0): one 16-byte load when vec and all V are there. */
template <int DT>
__device__ __forceinline__ void load_cols(const void *p, int64_t i, int nc, bool vec, float *x) {
    constexpr int V = kVec<DT>;
    if (vec && nc == V) {
        load_vec<DT>(p, i / V, x);
        return;
    }
    for (int j = 0; j < V; j++) x[j] = j < nc ? load_hp(p, DT, i + j) : 0.0f;
}

/* y (rows, cols) of YDT += bias (cols). blockIdx.y walks rows; each thread of
 * blockIdx.x takes V = kVec<YDT> neighbouring columns, as one 16-byte vector
 * when vec (y aligned, cols a multiple of V), else one by one (issue 16). */
template <int YDT>
__global__ void bias_add_kernel(void *y, const void *bias, int bias_dt, int64_t rows, int64_t cols, bool vec) {
    constexpr int V = kVec<YDT>;
    const int64_t c0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c0 >= cols) return;
    const int nc = (int)min((int64_t)V, cols - c0);
    float b[V];
    for (int j = 0; j < V; j++) b[j] = j < nc ? load_hp(bias, bias_dt, c0 + j) : 0.0f;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const int64_t i = r * cols + c0;
        float x[V];
        load_cols<YDT>(y, i, nc, vec, x);
        for (int j = 0; j < V; j++) x[j] += b[j];
        if (vec && nc == V)
            store_vec<YDT>(y, i / V, x);
        else
            for (int j = 0; j < nc; j++) store_hp(y, YDT, i + j, x[j]);
    }
}

/* Column sums of dy (rows, cols) of DT: block (32, 8) takes 32 * V columns
 * (V = kVec<DT> neighbouring columns per thread, 16-byte loads when vec: dy
 * aligned and cols a multiple of V; else one by one, the same sums) and one
 * of gridDim.y row slices; each column's 8 row lanes are summed in shared
 * memory, in lane order. With one slice the sum goes straight to out, else to
 * partial (slices, cols) in f32. */
template <int DT>
__global__ void column_sum_kernel(void *out, int out_dt, float *partial, const void *dy, int64_t rows,
                                  int64_t cols, int64_t rows_per_slice, bool vec) {
    constexpr int V = kVec<DT>;
    __shared__ float acc[8][33];
    const int64_t c0 = ((int64_t)blockIdx.x * 32 + threadIdx.x) * V;
    const int nc = (int)max((int64_t)0, min((int64_t)V, cols - c0));
    const int64_t r_begin = (int64_t)blockIdx.y * rows_per_slice;
    const int64_t r_end = min(rows, r_begin + rows_per_slice);
    float s[V];
    for (int j = 0; j < V; j++) s[j] = 0.0f;
    for (int64_t r = r_begin + threadIdx.y; r < r_end && nc > 0; r += 8) {
        float x[V];
        load_cols<DT>(dy, r * cols + c0, nc, vec, x);
        for (int j = 0; j < V; j++) s[j] += x[j];
    }
    for (int j = 0; j < V; j++) { /* one column of each thread at a time through shared memory */
        __syncthreads();
        acc[threadIdx.y][threadIdx.x] = s[j];
        __syncthreads();
        if (threadIdx.y != 0 || j >= nc) continue;
        float t = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k++) t += acc[k][threadIdx.x];
        if (gridDim.y == 1)
            store_hp(out, out_dt, c0 + j, t);
        else
            partial[(int64_t)blockIdx.y * cols + c0 + j] = t;
    }
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
        /* A 16-byte aligned buffer takes 16-byte stores for its whole units,
         * then the last few elements (or all of them, unaligned) one by one. */
        const int es = fp8_dtype_size(dtype);
        int64_t head = 0;
        if (all_aligned16({d_dst})) {
            const int64_t nv = n * es / 16;
            head = nv * 16 / es;
            if (nv > 0) {
                const uint32_t word = es == 2 ? (bits & 0xffffu) * 0x10001u : bits;
                fill_vec_kernel<<<grid_for(ctx, nv, kThreads * 4), kThreads, 0, ctx->stream>>>((uint4 *)d_dst, nv,
                                                                                              word);
                FP8_LAUNCH_CHECK(fn, "fill_vec_kernel");
            }
        }
        if (head < n) {
            fill_kernel<<<grid_for(ctx, n - head, kThreads * 4), kThreads, 0, ctx->stream>>>(
                (char *)d_dst + head * es, dtype, n - head, bits);
            FP8_LAUNCH_CHECK(fn, "fill_kernel");
        }
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
        const int V = y_dtype == FP8_DTYPE_F32 ? 4 : 8;
        const bool vec = all_aligned16({d_y}) && cols % V == 0;
        const unsigned gx = (unsigned)((cols + (int64_t)kThreads * V - 1) / ((int64_t)kThreads * V));
        int64_t gy = ((int64_t)ctx->sm_count * 16 + gx - 1) / gx;
        gy = gy < 1 ? 1 : gy > rows ? rows : gy > 65535 ? 65535 : gy;
        if (y_dtype == FP8_DTYPE_F32)
            bias_add_kernel<FP8_DTYPE_F32><<<dim3(gx, (unsigned)gy), kThreads, 0, ctx->stream>>>(d_y, d_bias, bias_dtype,
                                                                                             rows, cols, vec);
        else
            bias_add_kernel<FP8_DTYPE_BF16><<<dim3(gx, (unsigned)gy), kThreads, 0, ctx->stream>>>(d_y, d_bias, bias_dtype,
                                                                                              rows, cols, vec);
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
        /* 32 threads of V columns each per block, whether the loads are vectors or not */
        const int V = dy_dtype == FP8_DTYPE_F32 ? 4 : 8;
        const int64_t col_blocks = (cols + 32 * V - 1) / (32 * V);
        /* Enough row slices to fill the GPU about 4 times over, each >= 64 rows,
         * partial sums fitting in the (stream-ordered, idle here) GEMM workspace. */
        int64_t slices = ((int64_t)ctx->sm_count * 4 + col_blocks - 1) / col_blocks;
        slices = std::min<int64_t>(slices, (rows + 63) / 64);
        slices = std::min<int64_t>(slices, (int64_t)(ctx->workspace_bytes / sizeof(float)) / cols);
        slices = std::max<int64_t>(std::min<int64_t>(slices, 65535), 1);
        const int64_t rows_per_slice = rows == 0 ? 1 : (rows + slices - 1) / slices;
        float *partial = (float *)ctx->workspace;
        const bool vec = all_aligned16({d_dy}) && cols % V == 0;
        const dim3 grid((unsigned)col_blocks, (unsigned)slices), block(32, 8);
        if (dy_dtype == FP8_DTYPE_F32)
            column_sum_kernel<FP8_DTYPE_F32><<<grid, block, 0, ctx->stream>>>(d_dbias, dbias_dtype, partial, d_dy, rows,
                                                                              cols, rows_per_slice, vec);
        else
            column_sum_kernel<FP8_DTYPE_BF16><<<grid, block, 0, ctx->stream>>>(d_dbias, dbias_dtype, partial, d_dy, rows,
                                                                               cols, rows_per_slice, vec);
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
