/*
 * nn_kernels.cu — the device twins of the CPU nn ops: softmax / log-softmax
 * and layer norm (fp8_cpu_softmax*, fp8_cpu_layer_norm* in
 * cpu/norm_softmax.cpp), RMS norm, embedding and cross entropy
 * (cpu/nn_kernels.c), each with its backward. Same arguments after ctx, every
 * data pointer device memory, F32 or BF16 data, each result rounded once to
 * the destination dtype (bf16 RNE). Built into libfp8_cuda (see CMakeLists.txt).
 *
 * Row ops give each row of a (rows, cols) matrix a warp (cols <= 1024) or a
 * block (longer rows), reduce with shuffles and read the row again from L2
 * rather than keeping it in registers, so any cols works. Arithmetic is f32
 * with accurate expf/logf, except where the CPU twin accumulates in double
 * (RMS norm, cross entropy): there the device does too, in the same order of
 * operations per element, so that it matches the CPU to the last bit in all
 * but rare rounding ties. Sums across rows (dgamma, dbeta, the loss, the
 * embedding gradient) are deterministic: fixed slices and a second pass, or a
 * stable sort; no float atomics anywhere.
 *
 * Integer inputs (embedding indices, cross-entropy targets) live on the device,
 * so they cannot be refused here without a host sync: the host checks them as
 * it uploads them, and a bad value that is already on the device (computed
 * there, or in a captured graph) is recorded by the kernel that meets it in
 * the context's index-error flag (report_bad_index, cuda_common.cuh), which
 * the host reads at its next synchronisation (fp8_cuda_take_index_error). An
 * out-of-range value never reads or writes out of bounds; what it does
 * instead is stated at each function in fp8.h.
 */
#include <cub/device/device_radix_sort.cuh>

#include "cuda_common.cuh"

namespace fp8cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kReduceThreads = 1024;   /* the one-block reductions over rows */
constexpr int64_t kWarpRowCols = 1024; /* rows up to this long get a warp, longer ones a block */

/* v as store_hp would store it, read back. */
__device__ __forceinline__ float round_hp(float v, int dt) {
    return dt == FP8_DTYPE_F32 ? v : bf16_bits_to_f32(f32_to_bf16_bits(v));
}

/* ---- one row per group of G threads ------------------------------------------ */

/* G = 32: a warp per row, kThreads / 32 rows per block; G = kThreads (or
 * kReduceThreads for the one-block kernels): the block per row. The loops
 * over rows are uniform across a group, so every thread of a group takes
 * part in every reduction. */
template <int G>
__device__ __forceinline__ int64_t first_row() {
    return (int64_t)blockIdx.x * (blockDim.x / G) + threadIdx.x / G;
}
template <int G>
__device__ __forceinline__ int64_t row_step() {
    return (int64_t)gridDim.x * (blockDim.x / G);
}

/* Sum over the group; every thread gets the same value (the butterfly adds
 * the same pairs in every lane), in the same order on every run. */
template <int G, class T>
__device__ __forceinline__ T group_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if constexpr (G > 32) {
        __shared__ T part[G / 32];
        __syncthreads(); /* the previous reduction's reads of part are done */
        if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
        __syncthreads();
        v = part[0];
#pragma unroll
        for (int w = 1; w < G / 32; w++) v += part[w];
    }
    return v;
}

/* Max over the group (fmaxf: a NaN loses to a number, as the CPU's fmaxf). */
template <int G>
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if constexpr (G > 32) {
        __shared__ float part[G / 32];
        __syncthreads();
        if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
        __syncthreads();
        v = part[0];
#pragma unroll
        for (int w = 1; w < G / 32; w++) v = fmaxf(v, part[w]);
    }
    return v;
}

/* ---- rows in 16-byte chunks (issue 16) ------------------------------------------ */

/* Every row kernel below reads and writes its row through for_row, which
 * cuts the row's array indices [base, base + cols) at the multiples of
 * V = kVec<DT> (16 bytes of DT): a head of (-base) mod V elements, whole
 * chunks of V elements, a tail of fewer than V. Lane l of the row's G threads
 * visits head element l, then chunks l, l + G, l + 2G, ..., then tail element
 * l, each chunk's elements in index order. A chunk is one 16-byte load or
 * store when the arrays it touches are 16-byte aligned (their base pointers;
 * the chunk starts at a multiple of V), else V loads of one element: the same
 * values in the same order either way. So each lane's partial sums, and the
 * fixed butterfly over the lanes that follows (group_sum), depend only on
 * (base mod V, cols, G), never on the pointers' alignment: an aligned buffer
 * and an unaligned view give the same bits, run after run (tested in
 * test/cuda_emu/nn_test.cpp). Per-column operands (gamma, beta) start their
 * chunks at column c = head, a multiple of V only when base is one: they are
 * read as vectors in rows with base % V == 0 (cols a multiple of V: all rows).
 *
 * Bytes in flight (issue 16): each thread has a 16-byte load outstanding per
 * array it streams, where it had 2 or 4 bytes, and nvcc 13 unrolls a row pass
 * whose chunks do not depend on each other by 4 (four ld.global.v4 per
 * iteration in softmax_kernel's PTX for sm_90). At the 40-68 registers these
 * kernels take (nvcc --resource-usage, sm_90), 3 to 6 blocks of 256 threads
 * stay resident per SM: 12-24 KiB per streamed array per SM from single
 * loads, up to 4 times that unrolled, against the 4-8 KiB of the element
 * loads and the ~22 KiB an H200 needs to saturate HBM. Compiled and run on the
 * emulator only so far (bench/gpu/bench.ts measures it on a GPU). */

/* Width, load_n, store_n and for_row: cuda_common.cuh. */

/* ---- softmax ------------------------------------------------------------------- */

/* dst (rows, cols) <- softmax of src along each row, oneDNN's "accurate"
 * algorithm as on the CPU: exp(x - max) / sum; log: (x - max) - log(sum).
 * vec: src and dst 16-byte aligned. */
template <int G, int DT>
__global__ void __launch_bounds__(kThreads)
softmax_kernel(void *dst, const void *src, int64_t rows, int64_t cols, int use_log, bool vec) {
    const int lane = threadIdx.x % G;
    for (int64_t r = first_row<G>(); r < rows; r += row_step<G>()) {
        const int64_t base = r * cols;
        float mx = -INFINITY;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<DT, N>(src, base + c, vec, x);
            for (int j = 0; j < N; j++) mx = fmaxf(mx, x[j]);
        });
        mx = group_max<G>(mx);
        float sum = 0.0f;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<DT, N>(src, base + c, vec, x);
            for (int j = 0; j < N; j++) sum += expf(x[j] - mx);
        });
        sum = group_sum<G>(sum);
        const float log_sum = use_log ? logf(sum) : 0.0f;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<DT, N>(src, base + c, vec, x);
            for (int j = 0; j < N; j++) x[j] = use_log ? (x[j] - mx) - log_sum : expf(x[j] - mx) / sum;
            store_n<DT, N>(dst, base + c, vec, x);
        });
    }
}

/* dsrc (rows, cols) from ddst and the forward output y = dst:
 * softmax: y * (dy - sum(dy * y)); log-softmax: dy - exp(y) * sum(dy).
 * vec: dsrc, ddst and dst 16-byte aligned. */
template <int G, int DT>
__global__ void __launch_bounds__(kThreads)
softmax_backward_kernel(void *dsrc, const void *ddst, const void *dst, int64_t rows, int64_t cols, int use_log,
                        bool vec) {
    const int lane = threadIdx.x % G;
    for (int64_t r = first_row<G>(); r < rows; r += row_step<G>()) {
        const int64_t base = r * cols;
        float s = 0.0f;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float dy[N], y[N];
            load_n<DT, N>(ddst, base + c, vec, dy);
            if (!use_log) load_n<DT, N>(dst, base + c, vec, y);
            for (int j = 0; j < N; j++) s += use_log ? dy[j] : dy[j] * y[j];
        });
        s = group_sum<G>(s);
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float dy[N], y[N];
            load_n<DT, N>(ddst, base + c, vec, dy);
            load_n<DT, N>(dst, base + c, vec, y);
            for (int j = 0; j < N; j++) dy[j] = use_log ? dy[j] - expf(y[j]) * s : y[j] * (dy[j] - s);
            store_n<DT, N>(dsrc, base + c, vec, dy);
        });
    }
}

/* ---- layer norm --------------------------------------------------------------------- */

/* gamma (or beta) at columns c .. c + N - 1 into x, or `none` when it is NULL;
 * vec: gamma and the chunk are 16-byte aligned (see for_row). */
template <int DT, int N>
__device__ __forceinline__ void load_param(const void *gamma, int64_t c, bool vec, float none, float *x) {
    if (gamma)
        load_n<DT, N>(gamma, c, vec, x);
    else
        for (int j = 0; j < N; j++) x[j] = none;
}

/* What both passes of a norm's backward read at columns c .. c + N - 1 of the row
 * starting at base: x (src), dy (ddst) and gamma (1 when NULL). vec: src and ddst
 * 16-byte aligned; gv: gamma too, at this row's offset (see for_row). */
template <int DT, int N>
__device__ __forceinline__ void load_norm_backward(const void *src, const void *ddst, const void *gamma, int64_t base,
                                                   int64_t c, bool vec, bool gv, float *x, float *dy, float *g) {
    load_n<DT, N>(src, base + c, vec, x);
    load_n<DT, N>(ddst, base + c, vec, dy);
    load_param<DT, N>(gamma, c, gv, 1.0f, g);
}

/* Layer norm backward's terms at those columns, made the same way in both of its
 * passes: xhat = (x - mean) * rstd and dxhat = dy * gamma. */
template <int DT, int N>
__device__ __forceinline__ void layer_norm_backward_terms(const void *src, const void *ddst, const void *gamma,
                                                          int64_t base, int64_t c, bool vec, bool gv, float mu,
                                                          float rs, float *xhat, float *dxhat) {
    float x[N], dy[N], g[N];
    load_norm_backward<DT, N>(src, ddst, gamma, base, c, vec, gv, x, dy, g);
    for (int j = 0; j < N; j++) xhat[j] = (x[j] - mu) * rs, dxhat[j] = dy[j] * g[j];
}

/* dst (rows, cols) <- (x - mean) * rstd [* gamma] [+ beta]; mean, rstd (rows)
 * f32 with a two-pass variance and rstd = 1 / sqrt(var + eps), as the CPU.
 * vec: dst and src 16-byte aligned; pvec: gamma and beta (those given) too. */
template <int G, int DT>
__global__ void __launch_bounds__(kThreads)
layer_norm_kernel(void *dst, float *mean_out, float *rstd_out, const void *src, const void *gamma,
                  const void *beta, int64_t rows, int64_t cols, float eps, bool vec, bool pvec) {
    const int lane = threadIdx.x % G;
    for (int64_t r = first_row<G>(); r < rows; r += row_step<G>()) {
        const int64_t base = r * cols;
        const bool gv = pvec && base % kVec<DT> == 0;
        float s = 0.0f;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<DT, N>(src, base + c, vec, x);
            for (int j = 0; j < N; j++) s += x[j];
        });
        const float mean = group_sum<G>(s) / (float)cols;
        float q = 0.0f;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<DT, N>(src, base + c, vec, x);
            for (int j = 0; j < N; j++) {
                const float d = x[j] - mean;
                q += d * d;
            }
        });
        const float var = group_sum<G>(q) / (float)cols;
        const float rs = 1.0f / sqrtf(var + eps);
        if (lane == 0) {
            mean_out[r] = mean;
            rstd_out[r] = rs;
        }
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N], g[N], b[N];
            load_n<DT, N>(src, base + c, vec, x);
            load_param<DT, N>(gamma, c, gv, 1.0f, g);
            load_param<DT, N>(beta, c, gv, 0.0f, b);
            for (int j = 0; j < N; j++) {
                float y = (x[j] - mean) * rs;
                if (gamma) y *= g[j];
                if (beta) y += b[j];
                x[j] = y;
            }
            store_n<DT, N>(dst, base + c, vec, x);
        });
    }
}

/* dsrc (rows, cols) with xhat = (x - mean) * rstd, dxhat = dy * gamma (1 without):
 * rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
 * vec: dsrc, ddst and src 16-byte aligned; pvec: gamma too. */
template <int G, int DT>
__global__ void __launch_bounds__(kThreads)
layer_norm_backward_kernel(void *dsrc, const void *ddst, const void *src, const float *mean,
                           const float *rstd, const void *gamma, int64_t rows, int64_t cols, bool vec,
                           bool pvec) {
    const int lane = threadIdx.x % G;
    for (int64_t r = first_row<G>(); r < rows; r += row_step<G>()) {
        const int64_t base = r * cols;
        const bool gv = pvec && base % kVec<DT> == 0;
        const float mu = mean[r], rs = rstd[r];
        float s1 = 0.0f, s2 = 0.0f;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float xhat[N], dxhat[N];
            layer_norm_backward_terms<DT, N>(src, ddst, gamma, base, c, vec, gv, mu, rs, xhat, dxhat);
            for (int j = 0; j < N; j++) {
                s1 += dxhat[j];
                s2 += dxhat[j] * xhat[j];
            }
        });
        const float mean_dxhat = group_sum<G>(s1) / (float)cols;
        const float mean_dxhat_xhat = group_sum<G>(s2) / (float)cols;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float xhat[N], dxhat[N];
            layer_norm_backward_terms<DT, N>(src, ddst, gamma, base, c, vec, gv, mu, rs, xhat, dxhat);
            for (int j = 0; j < N; j++) xhat[j] = rs * (dxhat[j] - mean_dxhat - xhat[j] * mean_dxhat_xhat);
            store_n<DT, N>(dsrc, base + c, vec, xhat);
        });
    }
}

/* ---- the norms' parameter gradients: column sums over rows ----------------------- */

enum { kLayerNorm = 0, kRmsNorm = 1 };

/* In double: layer norm dgamma = sum dy * xhat, dbeta = sum dy; RMS norm
 * dgamma = sum (dy * x) * rstd (the CPU's order). Block (32, 8) takes 32 * V
 * columns (V = kVec<DT>, V neighbouring columns per thread: 16-byte loads when
 * vec, i.e. ddst and src aligned and cols a multiple of V; one by one
 * otherwise, with the same columns, rows and order) and one of gridDim.y row
 * slices. Each column's 8 row lanes are summed in shared memory, in lane
 * order. With one slice the sums go straight to the outputs (either may be
 * NULL), else to partial (slices, 2, cols). */
template <int MODE, int DT>
__global__ void norm_param_grad_kernel(void *dgamma, void *dbeta, double *partial, const void *ddst,
                                       const void *src, const float *mean, const float *rstd, int64_t rows,
                                       int64_t cols, int64_t rows_per_slice, bool vec) {
    constexpr int V = kVec<DT>;
    __shared__ double acc[2][8][33];
    const int64_t c0 = ((int64_t)blockIdx.x * 32 + threadIdx.x) * V;
    const int nc = (int)max((int64_t)0, min((int64_t)V, cols - c0)); /* columns of this thread */
    const int64_t r_begin = (int64_t)blockIdx.y * rows_per_slice;
    const int64_t r_end = min(rows, r_begin + rows_per_slice);
    double g[V], b[V];
    for (int j = 0; j < V; j++) g[j] = 0.0, b[j] = 0.0;
    for (int64_t r = r_begin + threadIdx.y; r < r_end && nc > 0; r += 8) {
        float dy[V], x[V];
        if (nc == V) {
            load_n<DT, V>(ddst, r * cols + c0, vec, dy);
            load_n<DT, V>(src, r * cols + c0, vec, x);
        } else {
            for (int j = 0; j < nc; j++) dy[j] = load_hp(ddst, DT, r * cols + c0 + j), x[j] = load_hp(src, DT, r * cols + c0 + j);
            for (int j = nc; j < V; j++) dy[j] = 0.0f, x[j] = 0.0f; /* never stored */
        }
        for (int j = 0; j < V; j++) {
            if (MODE == kLayerNorm) {
                g[j] += (double)dy[j] * (double)((x[j] - mean[r]) * rstd[r]);
                b[j] += (double)dy[j];
            } else {
                g[j] = __dadd_rn(g[j], __dmul_rn(__dmul_rn((double)dy[j], (double)x[j]), (double)rstd[r]));
            }
        }
    }
    for (int j = 0; j < V; j++) { /* one column of each thread at a time through shared memory */
        __syncthreads();      /* the previous column's reads are done */
        acc[0][threadIdx.y][threadIdx.x] = g[j];
        acc[1][threadIdx.y][threadIdx.x] = b[j];
        __syncthreads();
        if (threadIdx.y != 0 || j >= nc) continue;
        const int64_t c = c0 + j;
        double tg = 0.0, tb = 0.0;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            tg += acc[0][k][threadIdx.x];
            tb += acc[1][k][threadIdx.x];
        }
        if (gridDim.y == 1) {
            if (dgamma) store_hp(dgamma, DT, c, (float)tg);
            if (dbeta) store_hp(dbeta, DT, c, (float)tb);
        } else {
            partial[((int64_t)blockIdx.y * 2) * cols + c] = tg;
            partial[((int64_t)blockIdx.y * 2 + 1) * cols + c] = tb;
        }
    }
}

__global__ void norm_param_grad_sum_kernel(void *dgamma, void *dbeta, const double *partial, int dt,
                                           int64_t slices, int64_t cols) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double tg = 0.0, tb = 0.0;
    for (int64_t k = 0; k < slices; k++) {
        tg += partial[(k * 2) * cols + c];
        tb += partial[(k * 2 + 1) * cols + c];
    }
    if (dgamma) store_hp(dgamma, dt, c, (float)tg);
    if (dbeta) store_hp(dbeta, dt, c, (float)tb);
}

/* ---- RMS norm ------------------------------------------------------------------------ */

/* dst (rows, cols) <- round(x * rstd) * gamma, rstd = f32(1 / sqrt(sum(x^2) / cols + eps))
 * with the sum in double, exactly fp8_cpu_rms_norm's operations (cols == 0 gives
 * a NaN rstd, as there); only the order of the row sum differs (for_row's).
 * vec: dst and src 16-byte aligned; pvec: gamma too. */
template <int G, int DT>
__global__ void __launch_bounds__(kThreads)
rms_norm_kernel(void *dst, float *rstd_out, const void *src, const void *gamma, int64_t rows, int64_t cols,
                float eps, bool vec, bool pvec) {
    const int lane = threadIdx.x % G;
    for (int64_t r = first_row<G>(); r < rows; r += row_step<G>()) {
        const int64_t base = r * cols;
        const bool gv = pvec && base % kVec<DT> == 0;
        double sumsq = 0.0;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<DT, N>(src, base + c, vec, x);
            for (int j = 0; j < N; j++) {
                const double xd = x[j];
                sumsq += xd * xd; /* exact product: an FMA gives the same sum */
            }
        });
        sumsq = group_sum<G>(sumsq);
        const float rs = (float)(1.0 / sqrt(sumsq / (double)cols + (double)eps));
        if (lane == 0) rstd_out[r] = rs;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N], g[N];
            load_n<DT, N>(src, base + c, vec, x);
            load_param<DT, N>(gamma, c, gv, 1.0f, g);
            for (int j = 0; j < N; j++) {
                const float y = x[j] * rs;
                x[j] = gamma ? round_hp(y, DT) * g[j] : y;
            }
            store_n<DT, N>(dst, base + c, vec, x);
        });
    }
}

/* dsrc (rows, cols) <- r * g * dy - x * r^3 / cols * sum(dy * g * x), in double
 * with fp8_cpu_rms_norm_backward's operation order (no contraction into FMAs).
 * vec: dsrc, ddst and src 16-byte aligned; pvec: gamma too. */
template <int G, int DT>
__global__ void __launch_bounds__(kThreads)
rms_norm_backward_kernel(void *dsrc, const void *ddst, const void *src, const float *rstd, const void *gamma,
                         int64_t rows, int64_t cols, bool vec, bool pvec) {
    const int lane = threadIdx.x % G;
    for (int64_t r = first_row<G>(); r < rows; r += row_step<G>()) {
        const int64_t base = r * cols;
        const bool gv = pvec && base % kVec<DT> == 0;
        const double rs = rstd[r];
        double dot = 0.0;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N], dy[N], g[N];
            load_norm_backward<DT, N>(src, ddst, gamma, base, c, vec, gv, x, dy, g);
            for (int j = 0; j < N; j++) dot = __dadd_rn(dot, __dmul_rn(__dmul_rn((double)dy[j], (double)g[j]), (double)x[j]));
        });
        dot = group_sum<G>(dot);
        const double coef = __ddiv_rn(__dmul_rn(__dmul_rn(__dmul_rn(dot, rs), rs), rs), (double)cols);
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N], dy[N], g[N];
            load_norm_backward<DT, N>(src, ddst, gamma, base, c, vec, gv, x, dy, g);
            for (int j = 0; j < N; j++)
                x[j] = (float)__dsub_rn(__dmul_rn(__dmul_rn(rs, (double)g[j]), (double)dy[j]), __dmul_rn(coef, (double)x[j]));
            store_n<DT, N>(dsrc, base + c, vec, x);
        });
    }
}

/* ---- embedding ---------------------------------------------------------------------- */

/* dst (n_idx, units) <- weight (num, units) rows picked by idx, copied bit for
 * bit in units U of a row's bytes: uint4 (16 bytes) when both pointers are
 * 16-byte aligned and a row is a whole number of them, else uint32_t, else the
 * bf16 element. An index outside [0, num) gives a row of zeros. blockIdx.x
 * walks the indices; blockIdx.y and the threads cover the row. */
template <class U>
__global__ void embedding_kernel(U *dst, const U *weight, const int32_t *idx, int64_t n_idx,
                                 int64_t num, int64_t units, IndexError *err) {
    for (int64_t i = blockIdx.x; i < n_idx; i += gridDim.x) {
        const int32_t k = idx[i];
        const bool ok = k >= 0 && k < num;
        if (!ok && blockIdx.y == 0 && threadIdx.x == 0) report_bad_index(err, FP8_CUDA_INDEX_EMBEDDING, k, num);
        for (int64_t c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; c < units;
             c += (int64_t)gridDim.y * blockDim.x)
            dst[i * units + c] = ok ? weight[(int64_t)k * units + c] : U{};
    }
}

/* Sort input for the embedding gradient: keys[i] <- idx[i], or `invalid`
 * (above every row of weight) when idx[i] is outside [0, num); pos[i] <- i. */
__global__ void embedding_keys_kernel(uint32_t *keys, int32_t *pos, const int32_t *idx, int64_t n_idx,
                                      int64_t num, uint32_t invalid, IndexError *err) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_idx; i += stride) {
        const int32_t k = idx[i];
        const bool ok = k >= 0 && k < num;
        if (!ok) report_bad_index(err, FP8_CUDA_INDEX_EMBEDDING_BACKWARD, k, num);
        keys[i] = ok ? (uint32_t)k : invalid;
        pos[i] = (int32_t)i;
    }
}

/* dweight (num, dim) += ddst (n, dim) grouped by row. keys (n) ascending and
 * pos (n) come from a stable sort, so each key's run lists its positions in
 * increasing order. The block at the first position of a run sums the run
 * into that weight row in f32, from dweight's value and in position order:
 * the additions fp8_cpu_embedding_backward makes, element by element. Each
 * thread takes N neighbouring columns: a 16-byte vector of DT when
 * both pointers are aligned and dim is a multiple of it (N = kVec<DT>), else 1. */
template <int DT, int N>
__global__ void embedding_backward_kernel(void *dweight, const void *ddst, const uint32_t *keys,
                                          const int32_t *pos, int64_t n, uint32_t invalid, int64_t dim) {
    constexpr bool vec = N > 1;
    for (int64_t k = blockIdx.x; k < n; k += gridDim.x) {
        const uint32_t key = keys[k];
        if (key >= invalid || (k > 0 && keys[k - 1] == key)) continue; /* uniform in the block */
        const int64_t row = (int64_t)key * dim;
        for (int64_t c = ((int64_t)blockIdx.y * blockDim.x + threadIdx.x) * N; c < dim;
             c += (int64_t)gridDim.y * blockDim.x * N) {
            float acc[N], d[N];
            load_n<DT, N>(dweight, row + c, vec, acc);
            for (int64_t j = k; j < n && keys[j] == key; j++) {
                load_n<DT, N>(ddst, (int64_t)pos[j] * dim + c, vec, d);
                for (int e = 0; e < N; e++) acc[e] += d[e];
            }
            store_n<DT, N>(dweight, row + c, vec, acc);
        }
    }
}

/* ---- cross entropy ------------------------------------------------------------------- */

/* logp (rows, cols) <- log_softmax(logits) with fp8_cpu_cross_entropy's
 * operations: f32 row max, sum of exp(x - max) in double, log_sum = f32(log(sum)),
 * logp = (x - max) - log_sum rounded to dtype. row_logp[r] <- the stored logp
 * at the row's target; NaN for a target outside [0, cols) that is not
 * ignore_index; unwritten for an ignored row. vec: logp and logits 16-byte aligned. */
template <int G, int DT>
__global__ void __launch_bounds__(kThreads)
cross_entropy_kernel(void *logp, float *row_logp, const void *logits, const int32_t *targets, int64_t rows,
                     int64_t cols, int32_t ignore_index, IndexError *err, bool vec) {
    const int lane = threadIdx.x % G;
    for (int64_t r = first_row<G>(); r < rows; r += row_step<G>()) {
        const int64_t base = r * cols;
        float mx = -INFINITY;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<DT, N>(logits, base + c, vec, x);
            for (int j = 0; j < N; j++) mx = fmaxf(mx, x[j]);
        });
        mx = group_max<G>(mx);
        double sum = 0.0;
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<DT, N>(logits, base + c, vec, x);
            for (int j = 0; j < N; j++) sum += exp((double)(x[j] - mx));
        });
        sum = group_sum<G>(sum);
        const float log_sum = (float)log(sum);
        const int32_t t = targets[r];
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float x[N];
            load_n<DT, N>(logits, base + c, vec, x);
            for (int j = 0; j < N; j++) {
                x[j] = (x[j] - mx) - log_sum;
                if (c + j == t) row_logp[r] = round_hp(x[j], DT);
            }
            store_n<DT, N>(logp, base + c, vec, x);
        });
        if (lane == 0 && t != ignore_index && (t < 0 || t >= cols)) {
            row_logp[r] = NAN;
            report_bad_index(err, FP8_CUDA_INDEX_CROSS_ENTROPY, t, cols);
        }
    }
}

/* *loss <- -(sum of row_logp over the rows not ignored) / their count, in
 * double as the CPU (0 / 0 = NaN when every row is ignored). One block. */
__global__ void __launch_bounds__(kReduceThreads)
cross_entropy_loss_kernel(float *loss, const float *row_logp, const int32_t *targets, int64_t rows,
                          int32_t ignore_index) {
    double nll = 0.0;
    long long count = 0;
    for (int64_t r = threadIdx.x; r < rows; r += kReduceThreads)
        if (targets[r] != ignore_index) {
            nll -= row_logp[r];
            count++;
        }
    nll = group_sum<kReduceThreads>(nll);
    count = group_sum<kReduceThreads>(count);
    if (threadIdx.x == 0) *loss = (float)(nll / (double)count);
}

/* *w <- f32(dloss / count) over the rows not ignored (0 when there are none),
 * as fp8_cpu_cross_entropy_backward computes it. One block. */
__global__ void __launch_bounds__(kReduceThreads)
cross_entropy_weight_kernel(float *w, const float *dloss, const int32_t *targets, int64_t rows,
                            int32_t ignore_index) {
    long long count = 0;
    for (int64_t r = threadIdx.x; r < rows; r += kReduceThreads) count += targets[r] != ignore_index;
    count = group_sum<kReduceThreads>(count);
    if (threadIdx.x == 0) *w = count > 0 ? (float)((double)*dloss / (double)count) : 0.0f;
}

/* dlogits (rows, cols) <- w * (exp(logp) - onehot(target)); 0 on ignored rows,
 * NaN on rows whose target is outside [0, cols). exp in double rounded to f32:
 * the correctly rounded expf in all but ties, as glibc's expf on the CPU.
 * vec: dlogits and logp 16-byte aligned. */
template <int G, int DT>
__global__ void __launch_bounds__(kThreads)
cross_entropy_backward_kernel(void *dlogits, const void *logp, const int32_t *targets, const float *w_ptr,
                              int64_t rows, int64_t cols, int32_t ignore_index, IndexError *err, bool vec) {
    const int lane = threadIdx.x % G;
    const float wt = *w_ptr;
    for (int64_t r = first_row<G>(); r < rows; r += row_step<G>()) {
        const int64_t base = r * cols;
        const int32_t t = targets[r];
        const bool ignored = t == ignore_index, bad = !ignored && (t < 0 || t >= cols);
        if (bad && lane == 0) report_bad_index(err, FP8_CUDA_INDEX_CROSS_ENTROPY_BACKWARD, t, cols);
        for_row<G, DT>(lane, base, cols, [&](auto w, int64_t c) {
            constexpr int N = decltype(w)::n;
            float v[N];
            if (bad || ignored) {
                for (int j = 0; j < N; j++) v[j] = bad ? NAN : 0.0f;
            } else {
                load_n<DT, N>(logp, base + c, vec, v);
                for (int j = 0; j < N; j++) v[j] = wt * ((float)exp((double)v[j]) - (c + j == t ? 1.0f : 0.0f));
            }
            store_n<DT, N>(dlogits, base + c, vec, v);
        });
    }
}

/* ---- host helpers ------------------------------------------------------------------------ */

/* a >= 0, b >= b_min and a * b fits in int64, as the CPU twins check. */
int32_t check_dims(const char *fn, const char *a_name, int64_t a, const char *b_name, int64_t b,
                   int64_t b_min) {
    FP8_REQUIRE(a >= 0 && b >= b_min, fn, "%s=%lld must be >= 0 and %s=%lld >= %lld", a_name, (long long)a,
                b_name, (long long)b, (long long)b_min);
    FP8_REQUIRE(b == 0 || a <= INT64_MAX / b, fn, "%s=%lld * %s=%lld overflows int64", a_name, (long long)a,
                b_name, (long long)b);
    return FP8_OK;
}

/* Blocks for a row kernel: a warp per row packs kThreads / 32 rows in a block. */
inline unsigned row_grid(const Ctx *ctx, int64_t rows, bool warp_per_row) {
    return grid_for(ctx, rows, warp_per_row ? kThreads / 32 : 1);
}

/* Calls launch(Width<G>{}, Width<DT>{}, grid) for a row kernel over (rows, cols):
 * G = 32 (a warp per row) for rows up to kWarpRowCols, else kThreads (the
 * block per row); DT the dtype (F32 or BF16). */
template <class L>
void launch_rows(const Ctx *ctx, int dt, int64_t rows, int64_t cols, L &&launch) {
    const bool warp = cols <= kWarpRowCols;
    const unsigned grid = row_grid(ctx, rows, warp);
    if (warp) {
        if (dt == FP8_DTYPE_F32)
            launch(Width<32>{}, Width<FP8_DTYPE_F32>{}, grid);
        else
            launch(Width<32>{}, Width<FP8_DTYPE_BF16>{}, grid);
    } else {
        if (dt == FP8_DTYPE_F32)
            launch(Width<kThreads>{}, Width<FP8_DTYPE_F32>{}, grid);
        else
            launch(Width<kThreads>{}, Width<FP8_DTYPE_BF16>{}, grid);
    }
}

/* Device memory for the length of one call: the context's workspace when it
 * is big enough (stream-ordered and idle between calls), else the context's pool,
 * freed on the stream after the work this call queues. */
struct CallTemp {
    cudaStream_t stream = nullptr;
    void *p = nullptr;
    bool owned = false;
    CallTemp() = default;
    CallTemp(const CallTemp &) = delete;
    CallTemp &operator=(const CallTemp &) = delete;
    ~CallTemp() {
        if (owned) cudaFreeAsync(p, stream);
    }
    int32_t get(const char *fn, Ctx *ctx, size_t bytes) {
        stream = ctx->stream;
        if (bytes <= ctx->workspace_bytes) {
            p = ctx->workspace;
            return FP8_OK;
        }
        FP8_CUDA_TRY(fn, "cudaMallocFromPoolAsync", pool_alloc(ctx, &p, bytes));
        owned = true;
        return FP8_OK;
    }
    int32_t release(const char *fn) {
        if (!owned) return FP8_OK;
        owned = false;
        FP8_CUDA_TRY(fn, "cudaFreeAsync", cudaFreeAsync(p, stream));
        return FP8_OK;
    }
};

/* dgamma / dbeta (cols, either NULL) of a norm's backward: column sums over
 * rows, zeros when rows == 0. Row slices fill the GPU about 4 times over,
 * each >= 64 rows, their partial sums in the workspace; one slice when they
 * do not fit. */
int32_t norm_param_grads(const char *fn, Ctx *ctx, int mode, void *dgamma, void *dbeta, const void *ddst,
                         const void *src, const float *mean, const float *rstd, int32_t dtype, int64_t rows,
                         int64_t cols) {
    if ((!dgamma && !dbeta) || cols == 0) return FP8_OK;
    /* 32 threads of V = kVec<dtype> columns each per block: the same grid (and so the
     * same row slices and sums) whether the loads are vectors or not */
    const int V = dtype == FP8_DTYPE_F32 ? 4 : 8;
    const int64_t col_blocks = (cols + 32 * V - 1) / (32 * V);
    const int64_t slice_bytes = 2 * cols * (int64_t)sizeof(double);
    int64_t slices = ((int64_t)ctx->sm_count * 4 + col_blocks - 1) / col_blocks;
    slices = std::min<int64_t>(slices, (rows + 63) / 64);
    slices = std::min<int64_t>(slices, (int64_t)ctx->workspace_bytes / slice_bytes);
    slices = std::max<int64_t>(std::min<int64_t>(slices, 65535), 1);
    const int64_t rows_per_slice = rows == 0 ? 1 : (rows + slices - 1) / slices;
    double *partial = (double *)ctx->workspace;
    const bool vec = all_aligned16({ddst, src}) && cols % V == 0;
    const dim3 grid((unsigned)col_blocks, (unsigned)slices), block(32, 8);
    if (mode == kLayerNorm && dtype == FP8_DTYPE_F32)
        norm_param_grad_kernel<kLayerNorm, FP8_DTYPE_F32><<<grid, block, 0, ctx->stream>>>(
            dgamma, dbeta, partial, ddst, src, mean, rstd, rows, cols, rows_per_slice, vec);
    else if (mode == kLayerNorm)
        norm_param_grad_kernel<kLayerNorm, FP8_DTYPE_BF16><<<grid, block, 0, ctx->stream>>>(
            dgamma, dbeta, partial, ddst, src, mean, rstd, rows, cols, rows_per_slice, vec);
    else if (dtype == FP8_DTYPE_F32)
        norm_param_grad_kernel<kRmsNorm, FP8_DTYPE_F32><<<grid, block, 0, ctx->stream>>>(
            dgamma, dbeta, partial, ddst, src, mean, rstd, rows, cols, rows_per_slice, vec);
    else
        norm_param_grad_kernel<kRmsNorm, FP8_DTYPE_BF16><<<grid, block, 0, ctx->stream>>>(
            dgamma, dbeta, partial, ddst, src, mean, rstd, rows, cols, rows_per_slice, vec);
    FP8_LAUNCH_CHECK(fn, "norm_param_grad_kernel");
    if (slices > 1) {
        norm_param_grad_sum_kernel<<<(unsigned)((cols + kThreads - 1) / kThreads), kThreads, 0, ctx->stream>>>(
            dgamma, dbeta, partial, dtype, slices, cols);
        FP8_LAUNCH_CHECK(fn, "norm_param_grad_sum_kernel");
    }
    return FP8_OK;
}

/* Threads per block and blocks along y for kernels whose threads cover dim columns. */
inline void column_layout(int64_t dim, int *threads, unsigned *gy) {
    *threads = dim >= kThreads ? kThreads : (int)((dim + 31) / 32 * 32);
    *gy = (unsigned)std::min<int64_t>((dim + *threads - 1) / *threads, 65535);
}

inline size_t align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace
}  // namespace fp8cuda

using namespace fp8cuda;

extern "C" {

FP8_API int32_t fp8_cuda_softmax(fp8_cuda_ctx_t c, void *d_dst, const void *d_src, int32_t dtype,
                                 int64_t rows, int64_t cols, int32_t log) {
    static const char fn[] = "fp8_cuda_softmax";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        int32_t st = check_dims(fn, "rows", rows, "cols", cols, 0);
        if (st != FP8_OK) return st;
        FP8_REQUIRE_DATA(d_dst, rows * cols, fn);
        FP8_REQUIRE_DATA(d_src, rows * cols, fn);
        ENTER(fn, c, ctx);
        if (rows == 0 || cols == 0) return FP8_OK;
        const bool vec = all_aligned16({d_dst, d_src});
        launch_rows(ctx, dtype, rows, cols, [&](auto g, auto d, unsigned grid) {
            softmax_kernel<decltype(g)::n, decltype(d)::n><<<grid, kThreads, 0, ctx->stream>>>(d_dst, d_src, rows, cols,
                                                                                           log != 0, vec);
        });
        FP8_LAUNCH_CHECK(fn, "softmax_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_softmax_backward(fp8_cuda_ctx_t c, void *d_dsrc, const void *d_ddst,
                                          const void *d_dst, int32_t dtype, int64_t rows, int64_t cols,
                                          int32_t log) {
    static const char fn[] = "fp8_cuda_softmax_backward";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        int32_t st = check_dims(fn, "rows", rows, "cols", cols, 0);
        if (st != FP8_OK) return st;
        FP8_REQUIRE_DATA(d_dsrc, rows * cols, fn);
        FP8_REQUIRE_DATA(d_ddst, rows * cols, fn);
        FP8_REQUIRE_DATA(d_dst, rows * cols, fn);
        ENTER(fn, c, ctx);
        if (rows == 0 || cols == 0) return FP8_OK;
        const bool vec = all_aligned16({d_dsrc, d_ddst, d_dst});
        launch_rows(ctx, dtype, rows, cols, [&](auto g, auto d, unsigned grid) {
            softmax_backward_kernel<decltype(g)::n, decltype(d)::n><<<grid, kThreads, 0, ctx->stream>>>(
                d_dsrc, d_ddst, d_dst, rows, cols, log != 0, vec);
        });
        FP8_LAUNCH_CHECK(fn, "softmax_backward_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_layer_norm(fp8_cuda_ctx_t c, void *d_dst, float *d_mean, float *d_rstd,
                                    const void *d_src, const void *d_gamma, const void *d_beta,
                                    int32_t dtype, int64_t rows, int64_t cols, float eps) {
    static const char fn[] = "fp8_cuda_layer_norm";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        FP8_REQUIRE(eps >= 0.0f && isfinite(eps), fn, "eps=%g must be finite and >= 0", (double)eps);
        int32_t st = check_dims(fn, "rows", rows, "cols", cols, 1);
        if (st != FP8_OK) return st;
        FP8_REQUIRE_DATA(d_dst, rows * cols, fn);
        FP8_REQUIRE_DATA(d_src, rows * cols, fn);
        FP8_REQUIRE_DATA(d_mean, rows, fn);
        FP8_REQUIRE_DATA(d_rstd, rows, fn);
        ENTER(fn, c, ctx);
        if (rows == 0) return FP8_OK;
        const bool vec = all_aligned16({d_dst, d_src}), pvec = all_aligned16({d_gamma, d_beta});
        launch_rows(ctx, dtype, rows, cols, [&](auto g, auto d, unsigned grid) {
            layer_norm_kernel<decltype(g)::n, decltype(d)::n><<<grid, kThreads, 0, ctx->stream>>>(
                d_dst, d_mean, d_rstd, d_src, d_gamma, d_beta, rows, cols, eps, vec, pvec);
        });
        FP8_LAUNCH_CHECK(fn, "layer_norm_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_layer_norm_backward(fp8_cuda_ctx_t c, void *d_dsrc, void *d_dgamma, void *d_dbeta,
                                             const void *d_ddst, const void *d_src, const float *d_mean,
                                             const float *d_rstd, const void *d_gamma, int32_t dtype,
                                             int64_t rows, int64_t cols) {
    static const char fn[] = "fp8_cuda_layer_norm_backward";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        int32_t st = check_dims(fn, "rows", rows, "cols", cols, 1);
        if (st != FP8_OK) return st;
        FP8_REQUIRE_DATA(d_dsrc, rows * cols, fn);
        FP8_REQUIRE_DATA(d_ddst, rows * cols, fn);
        FP8_REQUIRE_DATA(d_src, rows * cols, fn);
        FP8_REQUIRE_DATA(d_mean, rows, fn);
        FP8_REQUIRE_DATA(d_rstd, rows, fn);
        ENTER(fn, c, ctx);
        if (rows > 0) {
            const bool vec = all_aligned16({d_dsrc, d_ddst, d_src}), pvec = all_aligned16({d_gamma});
            launch_rows(ctx, dtype, rows, cols, [&](auto g, auto d, unsigned grid) {
                layer_norm_backward_kernel<decltype(g)::n, decltype(d)::n><<<grid, kThreads, 0, ctx->stream>>>(
                    d_dsrc, d_ddst, d_src, d_mean, d_rstd, d_gamma, rows, cols, vec, pvec);
            });
            FP8_LAUNCH_CHECK(fn, "layer_norm_backward_kernel");
        }
        return norm_param_grads(fn, ctx, kLayerNorm, d_dgamma, d_dbeta, d_ddst, d_src, d_mean, d_rstd, dtype,
                                rows, cols);
    });
}

FP8_API int32_t fp8_cuda_rms_norm(fp8_cuda_ctx_t c, void *d_dst, float *d_rstd, const void *d_src,
                                  const void *d_gamma, int32_t dtype, int64_t rows, int64_t cols, float eps) {
    static const char fn[] = "fp8_cuda_rms_norm";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        int32_t st = check_dims(fn, "rows", rows, "cols", cols, 0);
        if (st != FP8_OK) return st;
        FP8_REQUIRE(eps >= 0.0f, fn, "eps must be >= 0, got %g", (double)eps);
        FP8_REQUIRE_DATA(d_dst, rows * cols, fn);
        FP8_REQUIRE_DATA(d_src, rows * cols, fn);
        FP8_REQUIRE_DATA(d_rstd, rows, fn);
        ENTER(fn, c, ctx);
        if (rows == 0) return FP8_OK;
        const bool vec = all_aligned16({d_dst, d_src}), pvec = all_aligned16({d_gamma});
        launch_rows(ctx, dtype, rows, cols, [&](auto g, auto d, unsigned grid) {
            rms_norm_kernel<decltype(g)::n, decltype(d)::n><<<grid, kThreads, 0, ctx->stream>>>(
                d_dst, d_rstd, d_src, d_gamma, rows, cols, eps, vec, pvec);
        });
        FP8_LAUNCH_CHECK(fn, "rms_norm_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_rms_norm_backward(fp8_cuda_ctx_t c, void *d_dsrc, void *d_dgamma, const void *d_ddst,
                                           const void *d_src, const float *d_rstd, const void *d_gamma,
                                           int32_t dtype, int64_t rows, int64_t cols) {
    static const char fn[] = "fp8_cuda_rms_norm_backward";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE(d_gamma || !d_dgamma, fn, "d_dgamma is given but d_gamma is NULL");
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        int32_t st = check_dims(fn, "rows", rows, "cols", cols, 0);
        if (st != FP8_OK) return st;
        FP8_REQUIRE_DATA(d_dsrc, rows * cols, fn);
        FP8_REQUIRE_DATA(d_ddst, rows * cols, fn);
        FP8_REQUIRE_DATA(d_src, rows * cols, fn);
        FP8_REQUIRE_DATA(d_rstd, rows, fn);
        ENTER(fn, c, ctx);
        if (rows > 0 && cols > 0) {
            const bool vec = all_aligned16({d_dsrc, d_ddst, d_src}), pvec = all_aligned16({d_gamma});
            launch_rows(ctx, dtype, rows, cols, [&](auto g, auto d, unsigned grid) {
                rms_norm_backward_kernel<decltype(g)::n, decltype(d)::n><<<grid, kThreads, 0, ctx->stream>>>(
                    d_dsrc, d_ddst, d_src, d_rstd, d_gamma, rows, cols, vec, pvec);
            });
            FP8_LAUNCH_CHECK(fn, "rms_norm_backward_kernel");
        }
        return norm_param_grads(fn, ctx, kRmsNorm, d_dgamma, nullptr, d_ddst, d_src, nullptr, d_rstd, dtype, rows,
                                cols);
    });
}

FP8_API int32_t fp8_cuda_embedding(fp8_cuda_ctx_t c, void *d_dst, const void *d_weight, const int32_t *d_idx,
                                   int32_t dtype, int64_t n_idx, int64_t num, int64_t dim) {
    static const char fn[] = "fp8_cuda_embedding";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        int32_t st = check_dims(fn, "n_idx", n_idx, "dim", dim, 0);
        if (st == FP8_OK) st = check_dims(fn, "num", num, "dim", dim, 0);
        if (st != FP8_OK) return st;
        FP8_REQUIRE_DATA(d_dst, n_idx * dim, fn);
        FP8_REQUIRE_DATA(d_weight, num * dim, fn);
        FP8_REQUIRE_DATA(d_idx, n_idx, fn);
        ENTER(fn, c, ctx);
        if (n_idx == 0 || dim == 0) return FP8_OK;
        /* a row's bytes in the widest unit both pointers and the row length allow */
        const int64_t row_bytes = dim * fp8_dtype_size(dtype);
        const int unit = all_aligned16({d_dst, d_weight}) && row_bytes % 16 == 0 ? 16
                         : aligned(d_dst, 4) && aligned(d_weight, 4) && row_bytes % 4 == 0 ? 4
                                                                                            : 2;
        const int64_t units = row_bytes / unit;
        int threads;
        unsigned gy;
        column_layout(units, &threads, &gy);
        const dim3 grid(grid_for(ctx, n_idx, 1, 32), gy);
        if (unit == 16)
            embedding_kernel<uint4><<<grid, threads, 0, ctx->stream>>>(
                (uint4 *)d_dst, (const uint4 *)d_weight, d_idx, n_idx, num, units, ctx->d_index_error);
        else if (unit == 4)
            embedding_kernel<uint32_t><<<grid, threads, 0, ctx->stream>>>(
                (uint32_t *)d_dst, (const uint32_t *)d_weight, d_idx, n_idx, num, units, ctx->d_index_error);
        else
            embedding_kernel<uint16_t><<<grid, threads, 0, ctx->stream>>>(
                (uint16_t *)d_dst, (const uint16_t *)d_weight, d_idx, n_idx, num, units, ctx->d_index_error);
        FP8_LAUNCH_CHECK(fn, "embedding_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_embedding_backward(fp8_cuda_ctx_t c, void *d_dweight, const void *d_ddst,
                                            const int32_t *d_idx, int32_t dtype, int64_t n_idx, int64_t num,
                                            int64_t dim) {
    static const char fn[] = "fp8_cuda_embedding_backward";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        int32_t st = check_dims(fn, "n_idx", n_idx, "dim", dim, 0);
        if (st == FP8_OK) st = check_dims(fn, "num", num, "dim", dim, 0);
        if (st != FP8_OK) return st;
        FP8_REQUIRE(n_idx <= INT32_MAX, fn, "n_idx=%lld must be < 2^31 (device positions are int32)",
                    (long long)n_idx);
        FP8_REQUIRE_DATA(d_dweight, num * dim, fn);
        FP8_REQUIRE_DATA(d_ddst, n_idx * dim, fn);
        FP8_REQUIRE_DATA(d_idx, n_idx, fn);
        ENTER(fn, c, ctx);
        if (n_idx == 0 || dim == 0 || num == 0) return FP8_OK;

        /* Stable sort of (row, position) pairs on the row's bits only; an
         * invalid index gets the key `invalid`, sorted last and skipped. */
        const uint32_t invalid = (uint32_t)std::min<int64_t>(num, (int64_t)1 << 31);
        const int end_bit = 32 - __builtin_clz(invalid);
        const int n = (int)n_idx;
        size_t sort_bytes = 0;
        FP8_CUDA_TRY(fn, "cub::DeviceRadixSort::SortPairs (size query)",
                     cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, (const uint32_t *)nullptr,
                                                     (uint32_t *)nullptr, (const int32_t *)nullptr,
                                                     (int32_t *)nullptr, n, 0, end_bit, ctx->stream));
        const size_t vec = align256((size_t)n * 4);
        CallTemp temp;
        if ((st = temp.get(fn, ctx, 4 * vec + sort_bytes)) != FP8_OK) return st;
        char *base = (char *)temp.p;
        uint32_t *keys_in = (uint32_t *)base, *keys = (uint32_t *)(base + vec);
        int32_t *pos_in = (int32_t *)(base + 2 * vec), *pos = (int32_t *)(base + 3 * vec);
        void *sort_temp = base + 4 * vec;

        embedding_keys_kernel<<<grid_for(ctx, n_idx, kThreads), kThreads, 0, ctx->stream>>>(keys_in, pos_in, d_idx,
                                                                                            n_idx, num, invalid,
                                                                                            ctx->d_index_error);
        FP8_LAUNCH_CHECK(fn, "embedding_keys_kernel");
        FP8_CUDA_TRY(fn, "cub::DeviceRadixSort::SortPairs",
                     cub::DeviceRadixSort::SortPairs(sort_temp, sort_bytes, keys_in, keys, pos_in, pos, n, 0, end_bit,
                                                     ctx->stream));
        /* N neighbouring columns per thread: a 16-byte vector when the rows allow */
        const int V = dtype == FP8_DTYPE_F32 ? 4 : 8;
        const bool cols_vec = all_aligned16({d_dweight, d_ddst}) && dim % V == 0;
        int threads;
        unsigned gy;
        column_layout(cols_vec ? dim / V : dim, &threads, &gy);
        const dim3 grid(grid_for(ctx, n_idx, 1, 16), gy);
        if (dtype == FP8_DTYPE_F32 && cols_vec)
            embedding_backward_kernel<FP8_DTYPE_F32, 4><<<grid, threads, 0, ctx->stream>>>(
                d_dweight, d_ddst, keys, pos, n_idx, invalid, dim);
        else if (dtype == FP8_DTYPE_F32)
            embedding_backward_kernel<FP8_DTYPE_F32, 1><<<grid, threads, 0, ctx->stream>>>(
                d_dweight, d_ddst, keys, pos, n_idx, invalid, dim);
        else if (cols_vec)
            embedding_backward_kernel<FP8_DTYPE_BF16, 8><<<grid, threads, 0, ctx->stream>>>(
                d_dweight, d_ddst, keys, pos, n_idx, invalid, dim);
        else
            embedding_backward_kernel<FP8_DTYPE_BF16, 1><<<grid, threads, 0, ctx->stream>>>(
                d_dweight, d_ddst, keys, pos, n_idx, invalid, dim);
        FP8_LAUNCH_CHECK(fn, "embedding_backward_kernel");
        return temp.release(fn);
    });
}

FP8_API int32_t fp8_cuda_cross_entropy(fp8_cuda_ctx_t c, float *d_loss, void *d_logp, const void *d_logits,
                                       const int32_t *d_targets, int32_t dtype, int64_t rows, int64_t cols,
                                       int32_t ignore_index) {
    static const char fn[] = "fp8_cuda_cross_entropy";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(d_loss, fn);
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        int32_t st = check_dims(fn, "rows", rows, "cols", cols, 1);
        if (st != FP8_OK) return st;
        FP8_REQUIRE_DATA(d_logp, rows * cols, fn);
        FP8_REQUIRE_DATA(d_logits, rows * cols, fn);
        FP8_REQUIRE_DATA(d_targets, rows, fn);
        ENTER(fn, c, ctx);
        CallTemp temp;
        if ((st = temp.get(fn, ctx, (size_t)rows * sizeof(float))) != FP8_OK) return st;
        float *row_logp = (float *)temp.p;
        if (rows > 0) {
            const bool vec = all_aligned16({d_logp, d_logits});
            launch_rows(ctx, dtype, rows, cols, [&](auto g, auto d, unsigned grid) {
                cross_entropy_kernel<decltype(g)::n, decltype(d)::n><<<grid, kThreads, 0, ctx->stream>>>(
                    d_logp, row_logp, d_logits, d_targets, rows, cols, ignore_index, ctx->d_index_error, vec);
            });
            FP8_LAUNCH_CHECK(fn, "cross_entropy_kernel");
        }
        cross_entropy_loss_kernel<<<1, kReduceThreads, 0, ctx->stream>>>(d_loss, row_logp, d_targets, rows,
                                                                         ignore_index);
        FP8_LAUNCH_CHECK(fn, "cross_entropy_loss_kernel");
        return temp.release(fn);
    });
}

FP8_API int32_t fp8_cuda_cross_entropy_backward(fp8_cuda_ctx_t c, void *d_dlogits, const void *d_logp,
                                                const int32_t *d_targets, const float *d_dloss, int32_t dtype,
                                                int64_t rows, int64_t cols, int32_t ignore_index) {
    static const char fn[] = "fp8_cuda_cross_entropy_backward";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(d_dloss, fn);
        FP8_REQUIRE_HP(dtype, "dtype", fn);
        int32_t st = check_dims(fn, "rows", rows, "cols", cols, 1);
        if (st != FP8_OK) return st;
        FP8_REQUIRE_DATA(d_dlogits, rows * cols, fn);
        FP8_REQUIRE_DATA(d_logp, rows * cols, fn);
        FP8_REQUIRE_DATA(d_targets, rows, fn);
        ENTER(fn, c, ctx);
        if (rows == 0) return FP8_OK;
        CallTemp temp; /* 4 bytes: the workspace */
        if ((st = temp.get(fn, ctx, sizeof(float))) != FP8_OK) return st;
        float *w = (float *)temp.p;
        cross_entropy_weight_kernel<<<1, kReduceThreads, 0, ctx->stream>>>(w, d_dloss, d_targets, rows,
                                                                           ignore_index);
        FP8_LAUNCH_CHECK(fn, "cross_entropy_weight_kernel");
        const bool vec = all_aligned16({d_dlogits, d_logp});
        launch_rows(ctx, dtype, rows, cols, [&](auto g, auto d, unsigned grid) {
            cross_entropy_backward_kernel<decltype(g)::n, decltype(d)::n><<<grid, kThreads, 0, ctx->stream>>>(
                d_dlogits, d_logp, d_targets, w, rows, cols, ignore_index, ctx->d_index_error, vec);
        });
        FP8_LAUNCH_CHECK(fn, "cross_entropy_backward_kernel");
        return temp.release(fn);
    });
}

}  // extern "C"
