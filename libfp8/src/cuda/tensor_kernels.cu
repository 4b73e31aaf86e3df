/*
 * tensor_kernels.cu — the device twins of the CPU tensor ops: broadcasting
 * binary ops, oneDNN-style eltwise forward/backward, reductions, the strided
 * copy (permute, slice, cat), masked fill and a row-wise argmax.
 *
 * Semantics are those of the CPU functions (binary_reduce.cpp, eltwise.cpp,
 * copy.cpp, nn_kernels.c), the oracle of the GPU tests: F32 or BF16 data,
 * f32 arithmetic with the accurate CUDA math functions (expf, tanhf, erff;
 * this library is built without --use_fast_math), reductions accumulated in
 * f32, every result rounded once to bf16 (nearest even).
 * Shapes and strides are host arrays read here; the kernels get them by value
 * with size-1 dims dropped and neighbouring dims merged wherever both operands
 * walk them as one, so the common cases run over 1 to 3 dims.
 */
#include <algorithm>
#include <string>
#include <utility>

#include "cuda_common.cuh"
#include "dims.hpp"

namespace fp8cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxDims = 8; /* the CPU ops' limit */

/* An index space of ndim dims walked in row-major order, with the strides (in
 * elements) of two operands along it: (a, b) for binary, (dst, src) for copy. */
struct Strided2 {
    int ndim;
    int64_t dims[kMaxDims];
    int64_t stride0[kMaxDims];
    int64_t stride1[kMaxDims];
};

/* Offsets in both operands of the element with row-major index i. I is
 * uint32_t when every index and offset fits (host-checked), else int64_t.
 * The loop is unrolled so that the struct is read with constant indices. */
template <typename I>
__device__ __forceinline__ void strided_offsets(const Strided2 &s, I i, I &o0, I &o1) {
    I a = 0, b = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 1; --d) {
        if (d < s.ndim) {
            const I size = (I)s.dims[d];
            const I c = i % size;
            i /= size;
            a += c * (I)s.stride0[d];
            b += c * (I)s.stride1[d];
        }
    }
    o0 = a + i * (I)s.stride0[0]; /* what is left of i is the coordinate along dim 0 */
    o1 = b + i * (I)s.stride1[0];
}

/* Drops size-1 dims and merges each dim into the one outside it when both
 * operands step through the pair as through one dim (outer stride = inner
 * stride * inner size), e.g. (B, T, C) + (1, 1, C) -> (B*T, C) + (0, 1). */
Strided2 coalesce(int ndim, const int64_t *dims, const int64_t *s0, const int64_t *s1) {
    Strided2 r = {};
    for (int d = 0; d < ndim; ++d) {
        if (dims[d] == 1) continue;
        const int k = r.ndim - 1;
        if (k >= 0 && r.stride0[k] == s0[d] * dims[d] && r.stride1[k] == s1[d] * dims[d]) {
            r.dims[k] *= dims[d];
            r.stride0[k] = s0[d];
            r.stride1[k] = s1[d];
            continue;
        }
        r.dims[r.ndim] = dims[d];
        r.stride0[r.ndim] = s0[d];
        r.stride1[r.ndim] = s1[d];
        r.ndim++;
    }
    if (r.ndim == 0) r = {1, {1}, {0}, {0}}; /* a single element */
    return r;
}

/* The widest unit W (16, 8 or 4 bytes, or es itself) in which a copy of
 * es-byte elements over s can move: the innermost dim steps by 1 in both
 * operands, and its byte length, every other stride in bytes and both
 * pointers are multiples of W. s is then rewritten in W-byte units (same
 * bytes moved, so the same result; a permutation that moves the innermost
 * dim keeps W = es). */
int widen_copy(Strided2 &s, int es, const void *dst, const void *src) {
    const int k = s.ndim - 1;
    if (s.stride0[k] != 1 || s.stride1[k] != 1) return es;
    for (int w = 16; w > es; w >>= 1) {
        bool ok = ((uintptr_t)dst % w) == 0 && ((uintptr_t)src % w) == 0 && (s.dims[k] * es) % w == 0;
        for (int d = 0; ok && d < k; ++d) ok = (s.stride0[d] * es) % w == 0 && (s.stride1[d] * es) % w == 0;
        if (!ok) continue;
        s.dims[k] = s.dims[k] * es / w;
        for (int d = 0; d < k; ++d) {
            s.stride0[d] = s.stride0[d] * es / w;
            s.stride1[d] = s.stride1[d] * es / w;
        }
        return w;
    }
    return es;
}

/* ---- host-side shape checks (the CPU twins' rules and messages) ------------------- */

/* numel, dims_str, check_dims, broadcastable, same_dims: core/dims.hpp, shared
 * with the CPU twins so both give the same messages. */
using namespace fp8dims;

/* Row-major strides of dims, 0 along the size-1 dims (a broadcast operand). */
void broadcast_strides(const int64_t *dims, int ndim, int64_t *out) {
    int64_t acc = 1;
    for (int d = ndim - 1; d >= 0; --d) {
        out[d] = dims[d] == 1 ? 0 : acc;
        acc *= dims[d];
    }
}

/* 32-bit indexing when every index and offset stays below 2^31 (so that
 * i + grid stride cannot wrap either). */
bool fits_u32(int64_t max_index) { return max_index < ((int64_t)1 << 31); }

/* ---- binary ----------------------------------------------------------------------- */

/* The CPU's apply(), shared through fp8_ref.h. */
__device__ __forceinline__ float binary_apply(int alg, float x, float y) { return fp8_ref_binary(alg, x, y); }

/* dst (n, dense) <- a (op) b, a and b read through s (stride0: a, stride1: b). */
template <typename I>
__global__ void __launch_bounds__(kThreads)
binary_kernel(void *dst, const void *a, const void *b, int dt, int alg, Strided2 s, I n) {
    const I stride = (I)gridDim.x * blockDim.x;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        I ao, bo;
        strided_offsets(s, i, ao, bo);
        store_hp(dst, dt, i, binary_apply(alg, load_hp(a, dt, ao), load_hp(b, dt, bo)));
    }
}

/* dst (n, dense) <- a (op) b with broadcasting, V = kVec<DT> elements per step
 * (issue 16): the host takes this path when the innermost dim of s is a
 * multiple of V (so each step's V elements lie in one row of it) and each
 * operand steps through it by 1, read as 16-byte vectors (then that operand is
 * 16-byte aligned and its outer strides are multiples of V), or by 0, one
 * element broadcast to the V. dst is aligned. The same operations per element
 * as binary_kernel. */
template <int DT>
__global__ void __launch_bounds__(kThreads)
binary_broadcast_vec_kernel(void *dst, const void *a, const void *b, int alg, Strided2 s, uint32_t nv, bool a_vec,
                            bool b_vec) {
    constexpr int V = kVec<DT>;
    const uint32_t stride = (uint32_t)gridDim.x * blockDim.x;
    for (uint32_t k = (uint32_t)blockIdx.x * blockDim.x + threadIdx.x; k < nv; k += stride) {
        uint32_t ao, bo;
        strided_offsets(s, k * (uint32_t)V, ao, bo);
        float x[V], y[V];
        if (a_vec)
            load_vec<DT>(a, ao / V, x);
        else
            for (int j = 0; j < V; j++) x[j] = load_hp(a, DT, ao);
        if (b_vec)
            load_vec<DT>(b, bo / V, y);
        else
            for (int j = 0; j < V; j++) y[j] = load_hp(b, DT, bo);
#pragma unroll
        for (int j = 0; j < V; j++) x[j] = binary_apply(alg, x[j], y[j]);
        store_vec<DT>(dst, k, x);
    }
}

/* dst (n) <- a (op) b, all three dense with the same shape: 16-byte vectors
 * (vec: every pointer aligned), then the tail. */
template <int DT>
__global__ void __launch_bounds__(kThreads)
binary_dense_kernel(void *dst, const void *a, const void *b, int alg, int64_t n, bool vec) {
    constexpr int V = kVec<DT>;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x, tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t nv = vec ? n / V : 0;
    for (int64_t k = tid; k < nv; k += stride) {
        float x[V], y[V];
        load_vec<DT>(a, k, x);
        load_vec<DT>(b, k, y);
#pragma unroll
        for (int j = 0; j < V; j++) x[j] = binary_apply(alg, x[j], y[j]);
        store_vec<DT>(dst, k, x);
    }
    for (int64_t i = nv * V + tid; i < n; i += stride) store_hp(dst, DT, i, binary_apply(alg, load_hp(a, DT, i), load_hp(b, DT, i)));
}

/* ---- eltwise (oneDNN's formulas, as fp8_cpu_eltwise runs them) --------------------- */

/* sigmoid as oneDNN's logistic_fwd: 0 where exp(-s) would overflow; NaN stays NaN. */
__device__ __forceinline__ float logistic(float s) {
    const float in = -s;
    return in >= 88.72283172607421875f ? 0.0f : 1.0f / (1.0f + expf(in));
}

constexpr float kSqrt2OverPi = 0.79788458347320556640625f;
constexpr float kGeluTanhFit = 0.044715f;
constexpr float kSqrt1Over2 = 0.707106769084930419921875f;
constexpr float kTwoOverSqrtPi = 1.12837922573089599609375f;

/* alpha and beta are read by POW (alpha * s^beta) and LINEAR (alpha * s + beta)
 * only; SILU is oneDNN swish with alpha fixed at 1, as the CPU maps it. RELU
 * and ABS treat NaN as positive where the CPU's JIT kernels do: relu(NaN) = 0
 * (maxps), relu'(NaN) = abs'(NaN) = 1. */
__device__ __forceinline__ float eltwise_forward(int alg, float s, float alpha, float beta) {
    switch (alg) {
    case FP8_ELTWISE_RELU: return s > 0.0f ? s : 0.0f;
    case FP8_ELTWISE_GELU_TANH: {
        const float v = tanhf(kSqrt2OverPi * s * (1.0f + kGeluTanhFit * s * s));
        return 0.5f * s * (1.0f + v);
    }
    case FP8_ELTWISE_GELU_ERF: return 0.5f * s * (1.0f + erff(s * kSqrt1Over2));
    case FP8_ELTWISE_SILU: return s * logistic(s);
    case FP8_ELTWISE_TANH: return tanhf(s);
    case FP8_ELTWISE_EXP: return expf(s);
    case FP8_ELTWISE_LOG: return logf(s);
    case FP8_ELTWISE_SQRT: return sqrtf(s);
    case FP8_ELTWISE_POW: return alpha * powf(s, beta);
    case FP8_ELTWISE_LINEAR: return alpha * s + beta;
    case FP8_ELTWISE_ABS: return fabsf(s);
    default: return logistic(s); /* FP8_ELTWISE_SIGMOID */
    }
}

/* ddst * f'(s), from the forward input s (oneDNN's *_bwd formulas). */
__device__ __forceinline__ float eltwise_backward(int alg, float dd, float s, float alpha, float beta) {
    switch (alg) {
    case FP8_ELTWISE_RELU: return s > 0.0f || isnan(s) ? dd : 0.0f;
    case FP8_ELTWISE_GELU_TANH: {
        const float g = s * kSqrt2OverPi * (1.0f + kGeluTanhFit * s * s);
        const float dg = kSqrt2OverPi * (1.0f + 3.0f * kGeluTanhFit * s * s);
        const float v = tanhf(g);
        return dd * 0.5f * (1.0f + v) * (1.0f + s * (1.0f - v) * dg);
    }
    case FP8_ELTWISE_GELU_ERF: {
        const float v = s * kSqrt1Over2;
        return dd * 0.5f * (1.0f + erff(v) + v * kTwoOverSqrtPi * expf(-v * v));
    }
    case FP8_ELTWISE_SILU: {
        const float v = logistic(s);
        return dd * (v + s * v * (1.0f - v));
    }
    case FP8_ELTWISE_TANH: {
        const float e = tanhf(s);
        return dd * (1.0f - e) * (1.0f + e);
    }
    case FP8_ELTWISE_EXP: return dd * expf(s);
    case FP8_ELTWISE_LOG: return dd / s;
    case FP8_ELTWISE_SQRT: return dd / (2.0f * sqrtf(s));
    case FP8_ELTWISE_POW: return beta == 0.0f ? 0.0f : dd * (alpha * beta * powf(s, beta - 1.0f));
    case FP8_ELTWISE_LINEAR: return dd * alpha;
    case FP8_ELTWISE_ABS: return s > 0.0f || isnan(s) ? dd : s < 0.0f ? -dd : 0.0f;
    default: { /* FP8_ELTWISE_SIGMOID */
        const float v = logistic(s);
        return dd * v * (1.0f - v);
    }
    }
}

/* dst (n) <- f(src), or with BACKWARD dst <- ddst * f'(src). The alg is a
 * run-time value, uniform across the grid; the dtype a template argument. With
 * vec (every pointer 16-byte aligned) one 16-byte vector per step, then the
 * tail element by element. */
template <bool BACKWARD, int DT>
__global__ void __launch_bounds__(kThreads)
eltwise_kernel(void *dst, const void *ddst, const void *src, int64_t n, int alg, float alpha, float beta,
               bool vec) {
    constexpr int V = kVec<DT>;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x, tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t nv = vec ? n / V : 0;
    for (int64_t k = tid; k < nv; k += stride) {
        float s[V], d[V], y[V];
        load_vec<DT>(src, k, s);
        if (BACKWARD) load_vec<DT>(ddst, k, d);
#pragma unroll
        for (int j = 0; j < V; j++)
            y[j] = BACKWARD ? eltwise_backward(alg, d[j], s[j], alpha, beta) : eltwise_forward(alg, s[j], alpha, beta);
        store_vec<DT>(dst, k, y);
    }
    for (int64_t i = nv * V + tid; i < n; i += stride) {
        const float s = load_hp(src, DT, i);
        const float y = BACKWARD ? eltwise_backward(alg, load_hp(ddst, DT, i), s, alpha, beta)
                                 : eltwise_forward(alg, s, alpha, beta);
        store_hp(dst, DT, i, y);
    }
}

template <bool BACKWARD>
void launch_eltwise(const Ctx *ctx, void *dst, const void *ddst, const void *src, int dt, int64_t n, int alg,
                    float alpha, float beta) {
    const bool vec = all_aligned16({dst, ddst, src});
    if (dt == FP8_DTYPE_F32)
        eltwise_kernel<BACKWARD, FP8_DTYPE_F32><<<grid_for(ctx, vec ? n / 4 + 1 : n, kThreads), kThreads, 0, ctx->stream>>>(
            dst, ddst, src, n, alg, alpha, beta, vec);
    else
        eltwise_kernel<BACKWARD, FP8_DTYPE_BF16><<<grid_for(ctx, vec ? n / 8 + 1 : n, kThreads), kThreads, 0, ctx->stream>>>(
            dst, ddst, src, n, alg, alpha, beta, vec);
}

/* ---- reductions ------------------------------------------------------------------- */

/* Accumulation in f32. MEAN accumulates a sum and divides once at the end by
 * the number of elements reduced into the output. MAX and MIN propagate NaN
 * (the CPU's result with a NaN depends on where it sits in oneDNN's vector
 * lanes; here any NaN gives NaN, as in PyTorch). */
__device__ __forceinline__ float reduce_identity(int alg) {
    return alg == FP8_REDUCE_MAX ? -INFINITY : alg == FP8_REDUCE_MIN ? INFINITY : 0.0f;
}
__device__ __forceinline__ float reduce_combine(int alg, float acc, float x) {
    switch (alg) {
    case FP8_REDUCE_MAX: return x > acc || isnan(x) ? x : acc;
    case FP8_REDUCE_MIN: return x < acc || isnan(x) ? x : acc;
    default: return acc + x; /* SUM, MEAN */
    }
}
__device__ __forceinline__ float reduce_finish(int alg, float acc, float count) {
    return alg == FP8_REDUCE_MEAN ? acc / count : acc;
}
/* A partial pass stores raw accumulators: the mean's sum without the division. */
int partial_alg(int alg) { return alg == FP8_REDUCE_MEAN ? FP8_REDUCE_SUM : alg; }

/* Reduces v across a group of G threads (G = 32: the warp; G = kThreads: the
 * block, which must call this the same number of times in every thread);
 * every thread of the group gets the result. */
template <int G>
__device__ __forceinline__ float group_reduce(int alg, float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = reduce_combine(alg, v, __shfl_xor_sync(0xffffffffu, v, o));
    if constexpr (G == 32) {
        return v;
    } else {
        __shared__ float warp_acc[kThreads / 32];
        __syncthreads(); /* readers of the previous call are done */
        if (threadIdx.x % 32 == 0) warp_acc[threadIdx.x / 32] = v;
        __syncthreads();
        v = warp_acc[0];
#pragma unroll
        for (int w = 1; w < G / 32; w++) v = reduce_combine(alg, v, warp_acc[w]);
        return v;
    }
}

/* Last-axis reduction of src (rows, cols) of SDT, split into `chunks` segments
 * of `chunk` columns per row; G threads (a warp, or the block for long
 * segments) per segment s = r * chunks + c, which walk it in 16-byte chunks
 * (for_row in cuda_common.cuh: vectors when vec, src 16-byte aligned; the same
 * order of combination either way). out[s] <- reduce(segment): with one chunk
 * the final (rows) result in out_dt, else (rows, chunks) f32 partials under
 * partial_alg. count: elements per output, for the mean. */
template <int G, int SDT>
__global__ void __launch_bounds__(kThreads)
reduce_rows_kernel(void *out, int out_dt, const void *src, int64_t rows, int64_t cols, int64_t chunk,
                   int64_t chunks, int alg, float count, bool vec) {
    constexpr int kGroups = kThreads / G;
    const int lane = threadIdx.x % G;
    const int64_t segs = rows * chunks;
    const int64_t step = (int64_t)gridDim.x * kGroups;
    for (int64_t s = (int64_t)blockIdx.x * kGroups + threadIdx.x / G; s < segs; s += step) {
        const int64_t r = s / chunks, begin = (s % chunks) * chunk;
        const int64_t end = min(cols, begin + chunk);
        const int64_t base = r * cols;
        float acc = reduce_identity(alg);
        for_row<G, SDT>(lane, base + begin, end - begin, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<SDT, N>(src, base + begin + c, vec, x);
            for (int j = 0; j < N; j++) acc = reduce_combine(alg, acc, x[j]);
        });
        acc = group_reduce<G>(alg, acc);
        if (lane == 0) store_hp(out, out_dt, s, reduce_finish(alg, acc, count));
    }
}

/* Middle-axis reduction of src (outer, rows, cols) of SDT over rows. Block
 * (32, 8) takes 32 * V columns of one outer index (blockIdx.z, grid-stride),
 * V = kVec<SDT> neighbouring columns per thread (one 16-byte load when vec:
 * src aligned and cols a multiple of V; else one by one, the same columns and
 * order), and one of gridDim.y row slices; each column's 8 row lanes meet in
 * shared memory, in lane order. With one slice out is the final (outer, cols)
 * result in out_dt, else (outer, slices, cols) f32 partials under partial_alg. */
template <int SDT>
__global__ void __launch_bounds__(kThreads)
reduce_columns_kernel(void *out, int out_dt, const void *src, int64_t outer, int64_t rows, int64_t cols,
                      int64_t rows_per_slice, int alg, float count, bool vec) {
    constexpr int V = kVec<SDT>;
    __shared__ float acc_s[8][33];
    const int64_t c0 = ((int64_t)blockIdx.x * 32 + threadIdx.x) * V;
    const int nc = (int)max((int64_t)0, min((int64_t)V, cols - c0));
    const int64_t slice = blockIdx.y, slices = gridDim.y;
    const int64_t r_begin = slice * rows_per_slice;
    const int64_t r_end = min(rows, r_begin + rows_per_slice);
    for (int64_t o = blockIdx.z; o < outer; o += gridDim.z) {
        const int64_t base = o * rows * cols + c0;
        float acc[V];
        for (int j = 0; j < V; j++) acc[j] = reduce_identity(alg);
        for (int64_t r = r_begin + threadIdx.y; r < r_end && nc > 0; r += 8) {
            float x[V];
            if (vec && nc == V)
                load_vec<SDT>(src, (base + r * cols) / V, x);
            else
                for (int j = 0; j < nc; j++) x[j] = load_hp(src, SDT, base + r * cols + j);
            for (int j = 0; j < nc; j++) acc[j] = reduce_combine(alg, acc[j], x[j]);
        }
        for (int j = 0; j < V; j++) { /* one column of each thread at a time through shared memory */
            __syncthreads();          /* readers of the previous column (or o) are done */
            acc_s[threadIdx.y][threadIdx.x] = acc[j];
            __syncthreads();
            if (threadIdx.y != 0 || j >= nc) continue;
            const int64_t c = c0 + j;
            float t = acc_s[0][threadIdx.x];
#pragma unroll
            for (int k = 1; k < 8; k++) t = reduce_combine(alg, t, acc_s[k][threadIdx.x]);
            if (slices == 1)
                store_hp(out, out_dt, o * cols + c, reduce_finish(alg, t, count));
            else
                ((float *)out)[(o * slices + slice) * cols + c] = t;
        }
    }
}

/* Any other pattern of reduced dims: src split into kept and reduced dims
 * (each a run of neighbouring src dims, row-major, with its src stride). */
struct ReduceShape {
    int n_kept, n_red;
    int64_t kept_size[kMaxDims], kept_stride[kMaxDims];
    int64_t red_size[kMaxDims], red_stride[kMaxDims];
};

/* Offset in src of row-major index i over n dims of (size, stride). */
template <typename I>
__device__ __forceinline__ I walk(I i, int n, const int64_t (&size)[kMaxDims], const int64_t (&stride)[kMaxDims]) {
    I off = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 1; --d) {
        if (d < n) {
            const I sz = (I)size[d];
            off += (i % sz) * (I)stride[d];
            i /= sz;
        }
    }
    return off + i * (I)stride[0];
}

/* dst (n_out) <- reduce over the reduced dims of s, G threads per output. */
template <int G, typename I>
__global__ void __launch_bounds__(kThreads)
reduce_generic_kernel(void *dst, int dt, const void *src, ReduceShape s, I n_out, I n_red, int alg, float count) {
    constexpr int kGroups = kThreads / G;
    const int lane = threadIdx.x % G;
    const I step = (I)gridDim.x * kGroups;
    for (I o = (I)blockIdx.x * kGroups + threadIdx.x / G; o < n_out; o += step) {
        const I base = walk(o, s.n_kept, s.kept_size, s.kept_stride);
        float acc = reduce_identity(alg);
        for (I j = lane; j < n_red; j += G)
            acc = reduce_combine(alg, acc, load_hp(src, dt, base + walk(j, s.n_red, s.red_size, s.red_stride)));
        acc = group_reduce<G>(alg, acc);
        if (lane == 0) store_hp(dst, dt, o, reduce_finish(alg, acc, count));
    }
}

__global__ void fill_value_kernel(void *dst, int dt, int64_t n, float v) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) store_hp(dst, dt, i, v);
}

/* ---- argmax ------------------------------------------------------------------------ */

/* Whether (v at index i) beats (w at index j) in Tensor.argmax's order: the
 * first NaN wins, else the larger value, else the lower index. */
__device__ __forceinline__ bool argmax_beats(float v, int32_t i, float w, int32_t j) {
    const bool vn = isnan(v), wn = isnan(w);
    if (vn || wn) return vn && (!wn || i < j);
    return v > w || (v == w && i < j);
}

/* dst (rows) <- argmax of each row of src (rows, cols), G threads per row. */
template <int G>
__global__ void __launch_bounds__(kThreads)
argmax_kernel(int32_t *dst, const void *src, int dt, int64_t rows, int64_t cols) {
    constexpr int kGroups = kThreads / G;
    const int lane = threadIdx.x % G;
    const int64_t step = (int64_t)gridDim.x * kGroups;
    for (int64_t r = (int64_t)blockIdx.x * kGroups + threadIdx.x / G; r < rows; r += step) {
        float bv = -INFINITY;
        int32_t bi = INT32_MAX; /* loses to any element: cols <= INT32_MAX */
        for (int64_t j = lane; j < cols; j += G) {
            const float x = load_hp(src, dt, r * cols + j);
            if (argmax_beats(x, (int32_t)j, bv, bi)) {
                bv = x;
                bi = (int32_t)j;
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float w = __shfl_xor_sync(0xffffffffu, bv, o);
            const int32_t k = __shfl_xor_sync(0xffffffffu, bi, o);
            if (argmax_beats(w, k, bv, bi)) {
                bv = w;
                bi = k;
            }
        }
        if constexpr (G > 32) {
            __shared__ float warp_v[kThreads / 32];
            __shared__ int32_t warp_i[kThreads / 32];
            __syncthreads(); /* readers of the previous row are done */
            if (threadIdx.x % 32 == 0) {
                warp_v[threadIdx.x / 32] = bv;
                warp_i[threadIdx.x / 32] = bi;
            }
            __syncthreads();
#pragma unroll
            for (int w = 0; w < G / 32; w++)
                if (argmax_beats(warp_v[w], warp_i[w], bv, bi)) {
                    bv = warp_v[w];
                    bi = warp_i[w];
                }
        }
        if (lane == 0) dst[r] = bi;
    }
}

/* ---- data movement ------------------------------------------------------------------ */

/* dst[offset0] <- src[offset1] for each of the n elements of s. */
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
copy_strided_kernel(T *__restrict__ dst, const T *__restrict__ src, Strided2 s, I n) {
    const I stride = (I)gridDim.x * blockDim.x;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        I d, o;
        strided_offsets(s, i, d, o);
        dst[d] = src[o];
    }
}

template <typename I>
__global__ void __launch_bounds__(kThreads)
masked_fill_kernel(void *dst, const void *src, const uint8_t *__restrict__ mask, int dt, I n, I mask_n,
                   float value) {
    const I stride = (I)gridDim.x * blockDim.x;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        store_hp(dst, dt, i, mask[i % mask_n] ? value : load_hp(src, dt, i));
}

/* The same, V = kVec<DT> elements per step as 16-byte vectors of src and dst
 * (both aligned, mask_n a multiple of V, so a step's mask bytes are
 * neighbours; issue 16). */
template <int DT>
__global__ void __launch_bounds__(kThreads)
masked_fill_vec_kernel(void *dst, const void *src, const uint8_t *__restrict__ mask, uint32_t nv, uint32_t mask_n,
                       float value) {
    constexpr int V = kVec<DT>;
    const uint32_t stride = (uint32_t)gridDim.x * blockDim.x;
    for (uint32_t k = (uint32_t)blockIdx.x * blockDim.x + threadIdx.x; k < nv; k += stride) {
        const uint32_t m = (k * (uint32_t)V) % mask_n;
        float x[V];
        load_vec<DT>(src, k, x);
#pragma unroll
        for (int j = 0; j < V; j++)
            if (mask[m + j]) x[j] = value;
        store_vec<DT>(dst, k, x);
    }
}

/* ---- launchers ---------------------------------------------------------------------- */

/* Rows of G threads: a warp for rows up to 1024 long, the block beyond. */
constexpr int64_t kWarpRowCols = 1024;

/* Blocks for `groups` groups of G threads, grid-stride beyond 16 blocks per SM. */
template <int G>
unsigned blocks_for_groups(const Ctx *ctx, int64_t groups) {
    return grid_for(ctx, groups, kThreads / G, 16);
}

template <int G>
int32_t launch_rows(const char *fn, Ctx *ctx, void *out, int out_dt, const void *src, int src_dt, int64_t rows,
                    int64_t cols, int64_t chunk, int64_t chunks, int alg, float count) {
    const unsigned grid = blocks_for_groups<G>(ctx, rows * chunks);
    const bool vec = all_aligned16({src});
    if (src_dt == FP8_DTYPE_F32)
        reduce_rows_kernel<G, FP8_DTYPE_F32><<<grid, kThreads, 0, ctx->stream>>>(out, out_dt, src, rows, cols, chunk,
                                                                                 chunks, alg, count, vec);
    else
        reduce_rows_kernel<G, FP8_DTYPE_BF16><<<grid, kThreads, 0, ctx->stream>>>(out, out_dt, src, rows, cols, chunk,
                                                                                  chunks, alg, count, vec);
    FP8_LAUNCH_CHECK(fn, "reduce_rows_kernel");
    return FP8_OK;
}

int32_t reduce_rows(const char *fn, Ctx *ctx, void *out, int out_dt, const void *src, int src_dt, int64_t rows,
                    int64_t cols, int64_t chunk, int64_t chunks, int alg, float count) {
    if (chunk <= kWarpRowCols)
        return launch_rows<32>(fn, ctx, out, out_dt, src, src_dt, rows, cols, chunk, chunks, alg, count);
    return launch_rows<kThreads>(fn, ctx, out, out_dt, src, src_dt, rows, cols, chunk, chunks, alg, count);
}

/* dst (rows) <- reduce of src (rows, cols) along cols. A few very long rows
 * are cut into chunks that fill the GPU; their f32 partials go to the
 * (stream-ordered, idle here) GEMM workspace and a second pass folds them. */
int32_t reduce_last_axis(const char *fn, Ctx *ctx, void *dst, const void *src, int dt, int64_t rows, int64_t cols,
                         int alg) {
    const float count = (float)cols;
    int64_t chunks = 1;
    if (rows < (int64_t)ctx->sm_count * 2 && cols >= 32768) {
        chunks = ((int64_t)ctx->sm_count * 4 + rows - 1) / rows;
        chunks = std::min<int64_t>(chunks, cols / 8192);
        chunks = std::min<int64_t>(chunks, (int64_t)(ctx->workspace_bytes / sizeof(float)) / rows);
        chunks = std::max<int64_t>(chunks, 1);
    }
    if (chunks == 1) return reduce_rows(fn, ctx, dst, dt, src, dt, rows, cols, cols, 1, alg, count);
    const int64_t chunk = (cols + chunks - 1) / chunks;
    chunks = (cols + chunk - 1) / chunk;
    float *partial = (float *)ctx->workspace;
    int32_t st = reduce_rows(fn, ctx, partial, FP8_DTYPE_F32, src, dt, rows, cols, chunk, chunks, partial_alg(alg), count);
    if (st != FP8_OK) return st;
    return reduce_rows(fn, ctx, dst, dt, partial, FP8_DTYPE_F32, rows, chunks, chunks, 1, alg, count);
}

/* dst (outer, cols) <- reduce of src (outer, rows, cols) along rows, in row
 * slices (partials in the workspace) when the columns alone cannot fill the GPU. */
/* One pass of reduce_columns_kernel over src (outer, rows, cols) of src_dt:
 * grid (column blocks of 32 * kVec<src_dt>, slices, z). */
int32_t launch_columns(const char *fn, Ctx *ctx, void *out, int out_dt, const void *src, int src_dt, int64_t outer,
                       int64_t rows, int64_t cols, int64_t slices, int64_t z, int64_t rows_per_slice, int alg,
                       float count) {
    const int V = src_dt == FP8_DTYPE_F32 ? 4 : 8;
    const dim3 grid((unsigned)((cols + 32 * V - 1) / (32 * V)), (unsigned)slices, (unsigned)z), block(32, 8);
    const bool vec = all_aligned16({src}) && cols % V == 0;
    if (src_dt == FP8_DTYPE_F32)
        reduce_columns_kernel<FP8_DTYPE_F32><<<grid, block, 0, ctx->stream>>>(out, out_dt, src, outer, rows, cols,
                                                                              rows_per_slice, alg, count, vec);
    else
        reduce_columns_kernel<FP8_DTYPE_BF16><<<grid, block, 0, ctx->stream>>>(out, out_dt, src, outer, rows, cols,
                                                                               rows_per_slice, alg, count, vec);
    FP8_LAUNCH_CHECK(fn, "reduce_columns_kernel");
    return FP8_OK;
}

/* dst (outer, cols) <- reduce of src (outer, rows, cols) along rows, in row
 * slices (partials in the workspace) when the columns alone cannot fill the GPU. */
int32_t reduce_middle_axis(const char *fn, Ctx *ctx, void *dst, const void *src, int dt, int64_t outer,
                           int64_t rows, int64_t cols, int alg) {
    const float count = (float)rows;
    const int V = dt == FP8_DTYPE_F32 ? 4 : 8;
    const int64_t col_blocks = (cols + 32 * V - 1) / (32 * V);
    const int64_t z = std::min<int64_t>(outer, 65535);
    int64_t slices = ((int64_t)ctx->sm_count * 4 + col_blocks * z - 1) / (col_blocks * z);
    slices = std::min<int64_t>(slices, (rows + 63) / 64);
    slices = std::min<int64_t>(slices, (int64_t)(ctx->workspace_bytes / sizeof(float)) / (outer * cols));
    slices = std::max<int64_t>(std::min<int64_t>(slices, 65535), 1);
    const int64_t rows_per_slice = (rows + slices - 1) / slices;
    if (slices == 1) return launch_columns(fn, ctx, dst, dt, src, dt, outer, rows, cols, 1, z, rows, alg, count);
    float *partial = (float *)ctx->workspace;
    const int32_t st = launch_columns(fn, ctx, partial, FP8_DTYPE_F32, src, dt, outer, rows, cols, slices, z,
                                      rows_per_slice, partial_alg(alg), count);
    if (st != FP8_OK) return st;
    return launch_columns(fn, ctx, dst, dt, partial, FP8_DTYPE_F32, outer, slices, cols, 1, z, slices, alg, count);
}

template <int G, typename I>
int32_t launch_generic(const char *fn, Ctx *ctx, void *dst, const void *src, int dt, const ReduceShape &s,
                       int64_t n_out, int64_t n_red, int alg) {
    reduce_generic_kernel<G, I><<<blocks_for_groups<G>(ctx, n_out), kThreads, 0, ctx->stream>>>(
        dst, dt, src, s, (I)n_out, (I)n_red, alg, (float)n_red);
    FP8_LAUNCH_CHECK(fn, "reduce_generic_kernel");
    return FP8_OK;
}

/* The fallback: one warp per output, or the block when there are few outputs
 * and each reduces many elements. */
int32_t reduce_generic(const char *fn, Ctx *ctx, void *dst, const void *src, int dt, const ReduceShape &s,
                       int64_t n_out, int64_t n_src, int alg) {
    const int64_t n_red = n_src / n_out;
    const bool block = n_out < (int64_t)ctx->sm_count * 16 && n_red >= 4096;
    if (fits_u32(n_src))
        return block ? launch_generic<kThreads, uint32_t>(fn, ctx, dst, src, dt, s, n_out, n_red, alg)
                     : launch_generic<32, uint32_t>(fn, ctx, dst, src, dt, s, n_out, n_red, alg);
    return block ? launch_generic<kThreads, int64_t>(fn, ctx, dst, src, dt, s, n_out, n_red, alg)
                 : launch_generic<32, int64_t>(fn, ctx, dst, src, dt, s, n_out, n_red, alg);
}

/* A transpose through shared memory: the copy's innermost dim a is contiguous
 * in dst (stride 1) and another dim b is contiguous in src; the other dims
 * (batch) are walked tile by tile. Each block moves 32 x 32 tiles: it reads
 * one along b (src-contiguous) and writes it along a (dst-contiguous), so both
 * sides are coalesced. 256 threads: lane tx = threadIdx.x % 32, row ty of 8. */
template <typename T>
__global__ void __launch_bounds__(kThreads)
copy_transpose_kernel(T *__restrict__ dst, const T *__restrict__ src, Strided2 batch, int64_t n_batch, int64_t na,
                      int64_t nb, int64_t dst_b, int64_t src_a, int64_t tiles_a, int64_t tiles_b) {
    __shared__ T tile[32][33]; /* [a][b], padded against bank conflicts */
    const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
    const int64_t n_tiles = n_batch * tiles_a * tiles_b;
    for (int64_t t = blockIdx.x; t < n_tiles; t += gridDim.x) {
        const int64_t a0 = (t % tiles_a) * 32, b0 = (t / tiles_a % tiles_b) * 32;
        int64_t d, o;
        strided_offsets(batch, t / tiles_a / tiles_b, d, o);
        for (int k = ty; k < 32; k += kThreads / 32)
            if (a0 + k < na && b0 + tx < nb) tile[k][tx] = src[o + (a0 + k) * src_a + b0 + tx];
        __syncthreads();
        for (int k = ty; k < 32; k += kThreads / 32)
            if (b0 + k < nb && a0 + tx < na) dst[d + (b0 + k) * dst_b + a0 + tx] = tile[tx][k];
        __syncthreads(); /* the tile is read before the next one is written */
    }
}

/* The tiled transpose's shape: the innermost dim a of s (coalesced) has dst
 * stride 1 and src stride != 1, another dim b has src stride 1, both at least
 * 16 long; the other dims form the batch. False when s is not such a copy.
 * Same bytes in the same places as the generic kernel (where dst strides
 * alias, which write stays is unspecified in both). */
struct TransposePlan {
    Strided2 batch;
    int64_t n_batch, na, nb, dst_b, src_a, tiles_a, tiles_b;
};
bool plan_transpose(const Strided2 &s, TransposePlan &p) {
    const int a = s.ndim - 1;
    if (a < 1 || s.stride0[a] != 1 || s.stride1[a] == 1 || s.dims[a] < 16) return false;
    int b = -1;
    for (int d = a - 1; d >= 0 && b < 0; --d)
        if (s.stride1[d] == 1) b = d;
    if (b < 0 || s.dims[b] < 16) return false;
    p = {};
    p.n_batch = 1;
    for (int d = 0; d < a; ++d) {
        if (d == b) continue;
        p.batch.dims[p.batch.ndim] = s.dims[d];
        p.batch.stride0[p.batch.ndim] = s.stride0[d];
        p.batch.stride1[p.batch.ndim] = s.stride1[d];
        p.batch.ndim++;
        p.n_batch *= s.dims[d];
    }
    if (p.batch.ndim == 0) p.batch = {1, {1}, {0}, {0}};
    p.na = s.dims[a];
    p.nb = s.dims[b];
    p.dst_b = s.stride0[b];
    p.src_a = s.stride1[a];
    p.tiles_a = (p.na + 31) / 32;
    p.tiles_b = (p.nb + 31) / 32;
    return true;
}

template <typename T>
int32_t launch_transpose(const char *fn, Ctx *ctx, void *dst, const void *src, const TransposePlan &p) {
    const int64_t n_tiles = p.n_batch * p.tiles_a * p.tiles_b;
    const unsigned blocks = (unsigned)std::min<int64_t>(n_tiles, (int64_t)ctx->sm_count * 8);
    copy_transpose_kernel<T><<<blocks, kThreads, 0, ctx->stream>>>((T *)dst, (const T *)src, p.batch, p.n_batch, p.na,
                                                                    p.nb, p.dst_b, p.src_a, p.tiles_a, p.tiles_b);
    FP8_LAUNCH_CHECK(fn, "copy_transpose_kernel");
    return FP8_OK;
}

template <typename T>
int32_t launch_copy(const char *fn, Ctx *ctx, void *dst, const void *src, const Strided2 &s, int64_t n,
                    bool narrow) {
    const unsigned blocks = grid_for(ctx, n, kThreads);
    if (narrow)
        copy_strided_kernel<T, uint32_t><<<blocks, kThreads, 0, ctx->stream>>>((T *)dst, (const T *)src, s,
                                                                                (uint32_t)n);
    else
        copy_strided_kernel<T, int64_t><<<blocks, kThreads, 0, ctx->stream>>>((T *)dst, (const T *)src, s, n);
    FP8_LAUNCH_CHECK(fn, "copy_strided_kernel");
    return FP8_OK;
}

}  // namespace
}  // namespace fp8cuda

using namespace fp8cuda;

extern "C" {

FP8_API int32_t fp8_cuda_binary(fp8_cuda_ctx_t c, void *d_dst, const int64_t *dst_dims, const void *d_a,
                                const int64_t *a_dims, const void *d_b, const int64_t *b_dims, int32_t dtype,
                                int32_t ndim, int32_t alg) {
    static const char fn[] = "fp8_cuda_binary";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(dst_dims, fn);
        FP8_REQUIRE_PTR(a_dims, fn);
        FP8_REQUIRE_PTR(b_dims, fn);
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        FP8_REQUIRE(ndim >= 1 && ndim <= kMaxDims, fn, "ndim=%d must be in 1..8", ndim);
        FP8_REQUIRE(alg >= FP8_BINARY_ADD && alg <= FP8_BINARY_MIN, fn, "unknown alg %d", alg);
        int32_t st;
        if ((st = check_dims(fn, "dst_dims", dst_dims, ndim)) != FP8_OK) return st;
        if ((st = check_dims(fn, "a_dims", a_dims, ndim)) != FP8_OK) return st;
        if ((st = check_dims(fn, "b_dims", b_dims, ndim)) != FP8_OK) return st;
        FP8_REQUIRE(broadcastable(a_dims, dst_dims, ndim) && broadcastable(b_dims, dst_dims, ndim), fn,
                    "a %s and b %s do not broadcast to dst %s (each dim must equal dst's or be 1)",
                    dims_str(a_dims, ndim).c_str(), dims_str(b_dims, ndim).c_str(), dims_str(dst_dims, ndim).c_str());
        const int64_t n = numel(dst_dims, ndim);
        FP8_REQUIRE_DATA(d_dst, n, fn);
        FP8_REQUIRE_DATA(d_a, numel(a_dims, ndim), fn);
        FP8_REQUIRE_DATA(d_b, numel(b_dims, ndim), fn);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;

        /* The CPU evaluates a commutative op as b (op) a when only b has dst's
         * shape (oneDNN broadcasts only its second source); the order decides
         * which operand max/min return when one is NaN, so keep it. */
        const bool commutative = alg == FP8_BINARY_ADD || alg == FP8_BINARY_MUL || alg == FP8_BINARY_MAX ||
                                 alg == FP8_BINARY_MIN;
        if (commutative && !same_dims(a_dims, dst_dims, ndim) && same_dims(b_dims, dst_dims, ndim)) {
            std::swap(d_a, d_b);
            std::swap(a_dims, b_dims);
        }
        int64_t as[kMaxDims], bs[kMaxDims];
        broadcast_strides(a_dims, ndim, as);
        broadcast_strides(b_dims, ndim, bs);
        const Strided2 s = coalesce(ndim, dst_dims, as, bs);
        if (s.ndim == 1 && s.stride0[0] == 1 && s.stride1[0] == 1) { /* no broadcast: the dense vector kernel */
            const bool vec = all_aligned16({d_dst, d_a, d_b});
            if (dtype == FP8_DTYPE_F32)
                binary_dense_kernel<FP8_DTYPE_F32><<<grid_for(ctx, vec ? n / 4 + 1 : n, kThreads), kThreads, 0, ctx->stream>>>(
                    d_dst, d_a, d_b, alg, n, vec);
            else
                binary_dense_kernel<FP8_DTYPE_BF16><<<grid_for(ctx, vec ? n / 8 + 1 : n, kThreads), kThreads, 0, ctx->stream>>>(
                    d_dst, d_a, d_b, alg, n, vec);
            FP8_LAUNCH_CHECK(fn, "binary_dense_kernel");
            return FP8_OK;
        }
        /* broadcasting along outer dims, the innermost dim in 16-byte vectors */
        const int V = dtype == FP8_DTYPE_F32 ? 4 : 8;
        const int last = s.ndim - 1;
        /* an operand read as vectors (inner stride 1) must be aligned with every outer stride a
         * multiple of V; one broadcast along the inner dim (stride 0) is read one element a step */
        const bool a_vec = s.stride0[last] == 1, b_vec = s.stride1[last] == 1;
        bool vec = fits_u32(n) && s.dims[last] % V == 0 && all_aligned16({d_dst, a_vec ? d_a : nullptr, b_vec ? d_b : nullptr}) &&
                   (a_vec || s.stride0[last] == 0) && (b_vec || s.stride1[last] == 0);
        for (int d = 0; d < last && vec; d++) vec = (!a_vec || s.stride0[d] % V == 0) && (!b_vec || s.stride1[d] % V == 0);
        if (vec) {
            const int64_t nv = n / V;
            if (dtype == FP8_DTYPE_F32)
                binary_broadcast_vec_kernel<FP8_DTYPE_F32><<<grid_for(ctx, nv, kThreads), kThreads, 0, ctx->stream>>>(
                    d_dst, d_a, d_b, alg, s, (uint32_t)nv, a_vec, b_vec);
            else
                binary_broadcast_vec_kernel<FP8_DTYPE_BF16><<<grid_for(ctx, nv, kThreads), kThreads, 0, ctx->stream>>>(
                    d_dst, d_a, d_b, alg, s, (uint32_t)nv, a_vec, b_vec);
            FP8_LAUNCH_CHECK(fn, "binary_broadcast_vec_kernel");
            return FP8_OK;
        }
        const unsigned blocks = grid_for(ctx, n, kThreads);
        if (fits_u32(n))
            binary_kernel<uint32_t><<<blocks, kThreads, 0, ctx->stream>>>(d_dst, d_a, d_b, dtype, alg, s, (uint32_t)n);
        else
            binary_kernel<int64_t><<<blocks, kThreads, 0, ctx->stream>>>(d_dst, d_a, d_b, dtype, alg, s, n);
        FP8_LAUNCH_CHECK(fn, "binary_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_eltwise(fp8_cuda_ctx_t c, void *d_dst, const void *d_src, int32_t dtype, int64_t n,
                                 int32_t alg, float alpha, float beta) {
    static const char fn[] = "fp8_cuda_eltwise";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        FP8_REQUIRE_N(n, fn);
        FP8_REQUIRE(alg >= FP8_ELTWISE_RELU && alg <= FP8_ELTWISE_SIGMOID, fn, "unknown alg %d", alg);
        FP8_REQUIRE_DATA(d_dst, n, fn);
        FP8_REQUIRE_DATA(d_src, n, fn);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        launch_eltwise<false>(ctx, d_dst, nullptr, d_src, dtype, n, alg, alpha, beta);
        FP8_LAUNCH_CHECK(fn, "eltwise_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_eltwise_backward(fp8_cuda_ctx_t c, void *d_dsrc, const void *d_ddst, const void *d_src,
                                          int32_t dtype, int64_t n, int32_t alg, float alpha, float beta) {
    static const char fn[] = "fp8_cuda_eltwise_backward";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        FP8_REQUIRE_N(n, fn);
        FP8_REQUIRE(alg >= FP8_ELTWISE_RELU && alg <= FP8_ELTWISE_SIGMOID, fn, "unknown alg %d", alg);
        FP8_REQUIRE_DATA(d_dsrc, n, fn);
        FP8_REQUIRE_DATA(d_ddst, n, fn);
        FP8_REQUIRE_DATA(d_src, n, fn);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        launch_eltwise<true>(ctx, d_dsrc, d_ddst, d_src, dtype, n, alg, alpha, beta);
        FP8_LAUNCH_CHECK(fn, "eltwise_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_reduce(fp8_cuda_ctx_t c, void *d_dst, const int64_t *dst_dims, const void *d_src,
                                const int64_t *src_dims, int32_t dtype, int32_t ndim, int32_t alg) {
    static const char fn[] = "fp8_cuda_reduce";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(dst_dims, fn);
        FP8_REQUIRE_PTR(src_dims, fn);
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        const int32_t st = check_reduce_shape(fn, dst_dims, src_dims, ndim, alg);
        if (st != FP8_OK) return st;
        const int64_t n_dst = numel(dst_dims, ndim), n_src = numel(src_dims, ndim);
        FP8_REQUIRE(n_dst == 0 || n_src > 0 || alg == FP8_REDUCE_SUM || alg == FP8_REDUCE_MEAN, fn,
                    "max/min over an empty dim has no value");
        FP8_REQUIRE_DATA(d_dst, n_dst, fn);
        FP8_REQUIRE_DATA(d_src, n_src, fn);
        ENTER(fn, c, ctx);
        if (n_dst == 0) return FP8_OK;
        if (n_src == 0) { /* as the CPU (and torch): the sum of nothing is 0, its mean NaN */
            fill_value_kernel<<<grid_for(ctx, n_dst, kThreads), kThreads, 0, ctx->stream>>>(
                d_dst, dtype, n_dst, alg == FP8_REDUCE_SUM ? 0.0f : NAN);
            FP8_LAUNCH_CHECK(fn, "fill_value_kernel");
            return FP8_OK;
        }
        if (same_dims(dst_dims, src_dims, ndim)) {
            if (d_dst != d_src)
                FP8_CUDA_TRY(fn, "cudaMemcpyAsync",
                             cudaMemcpyAsync(d_dst, d_src, (size_t)n_dst * fp8_dtype_size(dtype),
                                             cudaMemcpyDeviceToDevice, ctx->stream));
            return FP8_OK;
        }

        /* src as runs of kept (K) and reduced (R) dims, size-1 dims dropped:
         * [R] or [K, R] reduce rows, [R, K] or [K, R, K] reduce a middle axis,
         * anything else takes the generic kernel. */
        int n_groups = 0;
        int64_t size[kMaxDims];
        bool reduced[kMaxDims];
        for (int d = 0; d < ndim; ++d) {
            if (src_dims[d] == 1) continue;
            const bool red = dst_dims[d] == 1;
            if (n_groups > 0 && reduced[n_groups - 1] == red) {
                size[n_groups - 1] *= src_dims[d];
            } else {
                size[n_groups] = src_dims[d];
                reduced[n_groups] = red;
                n_groups++;
            }
        }
        const int last = n_groups - 1; /* >= 0: dims differ, so some src dim > 1 is reduced */
        if (reduced[last] && n_groups <= 2)
            return reduce_last_axis(fn, ctx, d_dst, d_src, dtype, n_groups == 2 ? size[0] : 1, size[last], alg);
        if (!reduced[last] && n_groups <= 3)
            return reduce_middle_axis(fn, ctx, d_dst, d_src, dtype, n_groups == 3 ? size[0] : 1, size[last - 1],
                                      size[last], alg);
        ReduceShape s = {};
        int64_t stride = 1;
        for (int g = last; g >= 0; --g) { /* filled innermost first, then moved to row-major order */
            if (reduced[g]) {
                s.red_size[s.n_red] = size[g];
                s.red_stride[s.n_red++] = stride;
            } else {
                s.kept_size[s.n_kept] = size[g];
                s.kept_stride[s.n_kept++] = stride;
            }
            stride *= size[g];
        }
        std::reverse(s.red_size, s.red_size + s.n_red);
        std::reverse(s.red_stride, s.red_stride + s.n_red);
        std::reverse(s.kept_size, s.kept_size + s.n_kept);
        std::reverse(s.kept_stride, s.kept_stride + s.n_kept);
        return reduce_generic(fn, ctx, d_dst, d_src, dtype, s, n_dst, n_src, alg);
    });
}

FP8_API int32_t fp8_cuda_copy_strided(fp8_cuda_ctx_t c, void *d_dst, const int64_t *dst_strides, const void *d_src,
                                      const int64_t *src_strides, const int64_t *dims, int32_t ndim,
                                      int32_t elem_size) {
    static const char fn[] = "fp8_cuda_copy_strided";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(dst_strides, fn);
        FP8_REQUIRE_PTR(src_strides, fn);
        FP8_REQUIRE_PTR(dims, fn);
        FP8_REQUIRE(ndim >= 1 && ndim <= kMaxDims, fn, "ndim=%d must be in 1..8", ndim);
        FP8_REQUIRE(elem_size == 1 || elem_size == 2 || elem_size == 4, fn, "elem_size=%d must be 1, 2 or 4",
                    elem_size);
        for (int d = 0; d < ndim; ++d) {
            FP8_REQUIRE(dims[d] >= 0, fn, "dims[%d]=%lld must be >= 0", d, (long long)dims[d]);
            FP8_REQUIRE(dst_strides[d] >= 0 && src_strides[d] >= 0, fn,
                        "strides must be >= 0 (dim %d: dst %lld, src %lld)", d, (long long)dst_strides[d],
                        (long long)src_strides[d]);
        }
        const int64_t n = numel(dims, ndim);
        FP8_REQUIRE(n >= 0, fn, "dims %s overflow int64", dims_str(dims, ndim).c_str());
        /* The furthest element either side touches must be addressable. */
        int64_t dst_end = 0, src_end = 0;
        if (n > 0)
            for (int d = 0; d < ndim; ++d) {
                int64_t t;
                FP8_REQUIRE(!__builtin_mul_overflow(dims[d] - 1, dst_strides[d], &t) &&
                                !__builtin_add_overflow(dst_end, t, &dst_end) &&
                                !__builtin_mul_overflow(dims[d] - 1, src_strides[d], &t) &&
                                !__builtin_add_overflow(src_end, t, &src_end),
                            fn, "strides with dims %s overflow int64", dims_str(dims, ndim).c_str());
            }
        FP8_REQUIRE_DATA(d_dst, n, fn);
        FP8_REQUIRE_DATA(d_src, n, fn);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;

        /* With a zero dst stride several elements land on one place; which
         * one stays is unspecified, as in the CPU's parallel loop. */
        Strided2 s = coalesce(ndim, dims, dst_strides, src_strides);
        const bool narrow = fits_u32(n) && fits_u32(dst_end) && fits_u32(src_end);
        /* Contiguous innermost runs move in 16-byte (else 8/4-byte) units:
         * n and every offset shrink by the same factor, so narrow still holds. */
        /* A transpose (dst's innermost dim strided in src) goes through
         * shared-memory tiles, coalesced on both sides. */
        TransposePlan tp;
        if (plan_transpose(s, tp)) {
            switch (elem_size) {
            case 1: return launch_transpose<uint8_t>(fn, ctx, d_dst, d_src, tp);
            case 2: return launch_transpose<uint16_t>(fn, ctx, d_dst, d_src, tp);
            default: return launch_transpose<uint32_t>(fn, ctx, d_dst, d_src, tp);
            }
        }
        const int w = widen_copy(s, elem_size, d_dst, d_src);
        const int64_t units = n * elem_size / w;
        switch (w) {
        case 1: return launch_copy<uint8_t>(fn, ctx, d_dst, d_src, s, units, narrow);
        case 2: return launch_copy<uint16_t>(fn, ctx, d_dst, d_src, s, units, narrow);
        case 4: return launch_copy<uint32_t>(fn, ctx, d_dst, d_src, s, units, narrow);
        case 8: return launch_copy<uint2>(fn, ctx, d_dst, d_src, s, units, narrow);
        default: return launch_copy<uint4>(fn, ctx, d_dst, d_src, s, units, narrow);
        }
    });
}

FP8_API int32_t fp8_cuda_masked_fill(fp8_cuda_ctx_t c, void *d_dst, const void *d_src, const uint8_t *d_mask,
                                     int32_t dtype, int64_t n, int64_t mask_n, float value) {
    static const char fn[] = "fp8_cuda_masked_fill";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        FP8_REQUIRE_N(n, fn);
        FP8_REQUIRE(mask_n >= 1, fn, "mask_n must be >= 1, got %lld", (long long)mask_n);
        FP8_REQUIRE(n % mask_n == 0, fn, "n (%lld) is not a multiple of mask_n (%lld)", (long long)n,
                    (long long)mask_n);
        FP8_REQUIRE_DATA(d_dst, n, fn);
        FP8_REQUIRE_DATA(d_src, n, fn);
        FP8_REQUIRE_DATA(d_mask, mask_n, fn);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        const int V = dtype == FP8_DTYPE_F32 ? 4 : 8;
        if (fits_u32(n) && mask_n % V == 0 && all_aligned16({d_dst, d_src})) {
            const int64_t nv = n / V;
            if (dtype == FP8_DTYPE_F32)
                masked_fill_vec_kernel<FP8_DTYPE_F32><<<grid_for(ctx, nv, kThreads), kThreads, 0, ctx->stream>>>(
                    d_dst, d_src, d_mask, (uint32_t)nv, (uint32_t)mask_n, value);
            else
                masked_fill_vec_kernel<FP8_DTYPE_BF16><<<grid_for(ctx, nv, kThreads), kThreads, 0, ctx->stream>>>(
                    d_dst, d_src, d_mask, (uint32_t)nv, (uint32_t)mask_n, value);
            FP8_LAUNCH_CHECK(fn, "masked_fill_vec_kernel");
            return FP8_OK;
        }
        const unsigned blocks = grid_for(ctx, n, kThreads);
        if (fits_u32(n))
            masked_fill_kernel<uint32_t><<<blocks, kThreads, 0, ctx->stream>>>(d_dst, d_src, d_mask, dtype,
                                                                                (uint32_t)n, (uint32_t)mask_n, value);
        else
            masked_fill_kernel<int64_t><<<blocks, kThreads, 0, ctx->stream>>>(d_dst, d_src, d_mask, dtype, n, mask_n,
                                                                               value);
        FP8_LAUNCH_CHECK(fn, "masked_fill_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_argmax(fp8_cuda_ctx_t c, int32_t *d_dst, const void *d_src, int32_t dtype, int64_t rows,
                                int64_t cols) {
    static const char fn[] = "fp8_cuda_argmax";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        FP8_REQUIRE(rows >= 0 && cols >= 1 && cols <= INT32_MAX, fn,
                    "rows must be >= 0 and cols in 1..2^31-1 (an empty row has no argmax), got (%lld, %lld)",
                    (long long)rows, (long long)cols);
        int64_t n;
        FP8_REQUIRE(!__builtin_mul_overflow(rows, cols, &n), fn, "rows * cols overflows (%lld * %lld)",
                    (long long)rows, (long long)cols);
        FP8_REQUIRE_DATA(d_dst, rows, fn);
        FP8_REQUIRE_DATA(d_src, n, fn);
        ENTER(fn, c, ctx);
        if (rows == 0) return FP8_OK;
        if (cols <= kWarpRowCols)
            argmax_kernel<32><<<blocks_for_groups<32>(ctx, rows), kThreads, 0, ctx->stream>>>(d_dst, d_src, dtype,
                                                                                              rows, cols);
        else
            argmax_kernel<kThreads><<<blocks_for_groups<kThreads>(ctx, rows), kThreads, 0, ctx->stream>>>(
                d_dst, d_src, dtype, rows, cols);
        FP8_LAUNCH_CHECK(fn, "argmax_kernel");
        return FP8_OK;
    });
}

}  // extern "C"
