/*
 * cast_kernels.cu — the fp8 kernels of libfp8_cuda: amax (and the scale) in
 * one pass, scaled saturating casts, the fused cast + transpose, the row-wise
 * (axiswise) dynamic cast, dequantize, unscaled conversions and the
 * delayed-scaling history update.
 *
 * Numerics are those of the CPU (libfp8/src/cpu/cast.c): the encoders are
 * fp8_ref.h itself (or the hardware cvt with the same results, see
 * encode2 in cuda_common.cuh), the scale multiply is one IEEE f32 multiply
 * with x86 NaN rules, and amax is an integer max over |bits| so that NaN
 * propagates. Shapes: every buffer is dense; n elements, or (rows, cols).
 *
 * Memory-bound kernels read 16 bytes per thread per load, keep four loads in
 * flight and fall back to a scalar path for misaligned pointers and tails.
 */
#include <type_traits>

#include "cuda_common.cuh"
#include "cast_checks.h"

namespace fp8cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4; /* independent 16-byte loads in flight per thread */

/* ---- amax -------------------------------------------------------------------- */

/* max of |bits| over the 16 bytes in w: 4 f32 or 8 bf16 (kept as two halves). */
template <int SRC>
__device__ __forceinline__ uint32_t fold16(uint32_t m, uint4 w) {
    if (SRC == FP8_DTYPE_F32) {
        m = max(m, w.x & 0x7fffffffu);
        m = max(m, w.y & 0x7fffffffu);
        m = max(m, w.z & 0x7fffffffu);
        return max(m, w.w & 0x7fffffffu);
    }
    m = __vmaxu2(m, w.x & 0x7fff7fffu);
    m = __vmaxu2(m, w.y & 0x7fff7fffu);
    m = __vmaxu2(m, w.z & 0x7fff7fffu);
    return __vmaxu2(m, w.w & 0x7fff7fffu);
}

/* |bits| of element i as f32 bits (bf16 widened by << 16). */
template <int SRC>
__device__ __forceinline__ uint32_t abs_bits(const void *src, int64_t i) {
    if (SRC == FP8_DTYPE_F32) return __float_as_uint(((const float *)src)[i]) & 0x7fffffffu;
    return ((uint32_t)((const uint16_t *)src)[i] & 0x7fffu) << 16;
}

/* amax over src (n) in one launch. Each block max-reduces its share into
 * scratch[0] (atomicMax on the bits: |x| orders like its bits, NaN above
 * inf); the last block to finish (scratch[1] counts them) writes *amax_out
 * (NaN made canonical, as on the CPU) and, when scale_out is given, the
 * scale, then zeroes scratch for the next launch on the stream. */
template <int SRC>
__global__ void __launch_bounds__(kThreads)
amax_kernel(float *amax_out, float *scale_out, const void *__restrict__ src, int64_t n,
            int64_t nvec, uint32_t *scratch, int fp8_dtype, int clamp_to_f16) {
    constexpr int EPV = SRC == FP8_DTYPE_F32 ? 4 : 8; /* elements per 16 bytes */
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const uint4 *v = (const uint4 *)src;
    uint32_t m = 0;
    int64_t i = tid;
    for (; i + (kUnroll - 1) * stride < nvec; i += kUnroll * stride) {
        uint4 w[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) w[u] = v[i + u * stride];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) m = fold16<SRC>(m, w[u]);
    }
    for (; i < nvec; i += stride) m = fold16<SRC>(m, v[i]);
    if (SRC == FP8_DTYPE_BF16) m = max(m & 0xffffu, m >> 16) << 16;
    for (int64_t j = nvec * EPV + tid; j < n; j += stride) m = max(m, abs_bits<SRC>(src, j));

    __shared__ uint32_t warp_max[kThreads / 32];
    m = __reduce_max_sync(0xffffffffu, m);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_max[warp] = m;
    __syncthreads();
    if (warp != 0) return;
    m = lane < kThreads / 32 ? warp_max[lane] : 0u;
    m = __reduce_max_sync(0xffffffffu, m);
    if (lane != 0) return;
    if (m) atomicMax(&scratch[0], m);
    __threadfence();
    if (atomicAdd(&scratch[1], 1u) != gridDim.x - 1) return;
    uint32_t bits = atomicExch(&scratch[0], 0u);
    atomicExch(&scratch[1], 0u);
    if (bits > 0x7f800000u) bits = 0x7fc00000u;
    const float amax = __uint_as_float(bits);
    if (amax_out) *amax_out = amax;
    if (scale_out) *scale_out = fp8_ref_scale_from_amax(amax, fp8_dtype, clamp_to_f16);
}

/* scale[i] <- 2^floor(log2(scale[i])) for finite positive normals (clears the
 * mantissa bits: exact); zero, subnormals, inf, NaN and negatives unchanged. */
__global__ void round_scales_pow2_kernel(float *scale, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        scale[i] = fp8_ref_round_down_pow2(scale[i]);
    }
}

__global__ void scale_from_amax_kernel(float *scale, const float *amax, int fp8_dtype, int clamp) {
    *scale = fp8_ref_scale_from_amax(*amax, fp8_dtype, clamp);
}

/* ---- quantize (n) ---------------------------------------------------------------- */

template <int SRC>
__device__ __forceinline__ float load_hp(const void *src, int64_t i) {
    if (SRC == FP8_DTYPE_F32) return ((const float *)src)[i];
    return bf16_bits_to_f32(((const uint16_t *)src)[i]);
}

/* The 16 source bytes w (4 f32 or 8 bf16), times s and encoded, into vector
 * slot k of dst: 4 bytes (f32) or 8 bytes (bf16). */
template <int SRC, int FP8, int KERNEL>
__device__ __forceinline__ void encode16(uint8_t *dst, int64_t k, uint4 w, float s) {
    if (SRC == FP8_DTYPE_F32) {
        ((uint32_t *)dst)[k] = encode4<FP8, KERNEL>(
            mul_x86(__uint_as_float(w.x), s), mul_x86(__uint_as_float(w.y), s),
            mul_x86(__uint_as_float(w.z), s), mul_x86(__uint_as_float(w.w), s));
    } else {
        uint32_t lo = encode4<FP8, KERNEL>(
            mul_x86(bf16_bits_to_f32(w.x & 0xffffu), s), mul_x86(bf16_bits_to_f32(w.x >> 16), s),
            mul_x86(bf16_bits_to_f32(w.y & 0xffffu), s), mul_x86(bf16_bits_to_f32(w.y >> 16), s));
        uint32_t hi = encode4<FP8, KERNEL>(
            mul_x86(bf16_bits_to_f32(w.z & 0xffffu), s), mul_x86(bf16_bits_to_f32(w.z >> 16), s),
            mul_x86(bf16_bits_to_f32(w.w & 0xffffu), s), mul_x86(bf16_bits_to_f32(w.w >> 16), s));
        ((uint2 *)dst)[k] = make_uint2(lo, hi);
    }
}

/* dst (n) <- encode(src * scale). Vector part: f32 reads a float4 and writes
 * 4 bytes, bf16 reads 8 values (16 bytes) and writes 8 bytes; consecutive
 * threads take consecutive vectors, so loads and stores are coalesced. */
template <int SRC, int FP8, int KERNEL>
__global__ void __launch_bounds__(kThreads)
quantize_kernel(uint8_t *__restrict__ dst, const void *__restrict__ src, int64_t n, int64_t nvec,
                const float *scale_p) {
    constexpr int EPV = SRC == FP8_DTYPE_F32 ? 4 : 8;
    const float s = *scale_p;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const uint4 *v = (const uint4 *)src;
    int64_t i = tid;
    auto emit = [&](int64_t k, uint4 w) { encode16<SRC, FP8, KERNEL>(dst, k, w, s); };
    for (; i + (kUnroll - 1) * stride < nvec; i += kUnroll * stride) {
        uint4 w[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) w[u] = v[i + u * stride];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) emit(i + u * stride, w[u]);
    }
    for (; i < nvec; i += stride) emit(i, v[i]);
    for (int64_t j = nvec * EPV + tid; j < n; j += stride)
        dst[j] = (uint8_t)encode2<FP8, KERNEL>(mul_x86(load_hp<SRC>(src, j), s), 0.0f);
}

/* ---- fused quantize + transpose (rows, cols) ------------------------------------------ */

constexpr int kTile = 64; /* 64 x 64 elements per block, 4 x 4 per thread */

/* Rows i of q (4 bytes each: cols c..c+3) -> words t[k] = col c+k, rows 0..3. */
__device__ __forceinline__ void transpose4x4(const uint32_t q[4], uint32_t t[4]) {
    const uint32_t lo01 = __byte_perm(q[0], q[1], 0x5140), lo23 = __byte_perm(q[2], q[3], 0x5140);
    const uint32_t hi01 = __byte_perm(q[0], q[1], 0x7362), hi23 = __byte_perm(q[2], q[3], 0x7362);
    t[0] = __byte_perm(lo01, lo23, 0x5410);
    t[1] = __byte_perm(lo01, lo23, 0x7632);
    t[2] = __byte_perm(hi01, hi23, 0x5410);
    t[3] = __byte_perm(hi01, hi23, 0x7632);
}

/* One read of src (rows, cols); dst (rows, cols) and dst_t (cols, rows) get
 * the same fp8 bytes. Thread (tx, ty) of 16 x 16 encodes the 4 x 4 block at
 * rows 4ty.., cols 4tx.. of its tile, stores its 4 row words directly (16
 * threads cover 64 contiguous bytes of a row), and hands the block, transposed
 * in registers, to shared memory; the block then writes dst_t rows as words.
 * `vec` (host-checked: aligned pointers, rows and cols multiples of 4) allows
 * vector loads and word stores in full tiles; edge tiles go element by element. */
template <int SRC, int FP8, int KERNEL>
__global__ void __launch_bounds__(kThreads)
quantize_transpose_kernel(uint8_t *__restrict__ dst, uint8_t *__restrict__ dst_t,
                          const void *__restrict__ src, int64_t rows, int64_t cols,
                          int64_t col_tiles, const float *scale_p, bool vec) {
    __shared__ uint32_t tile_t[kTile][kTile / 4 + 1]; /* [col][4-row word], padded */
    const float s = *scale_p;
    const int64_t r0 = (int64_t)(blockIdx.x / col_tiles) * kTile;
    const int64_t c0 = (int64_t)(blockIdx.x % col_tiles) * kTile;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int64_t r = r0 + 4 * ty, c = c0 + 4 * tx;
    const bool full = vec && r0 + kTile <= rows && c0 + kTile <= cols;

    uint32_t q[4];
    if (full) {
        float x[4][4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (SRC == FP8_DTYPE_F32) {
                const float4 f = *(const float4 *)((const float *)src + (r + j) * cols + c);
                x[j][0] = f.x, x[j][1] = f.y, x[j][2] = f.z, x[j][3] = f.w;
            } else {
                const uint2 h = *(const uint2 *)((const uint16_t *)src + (r + j) * cols + c);
                x[j][0] = bf16_bits_to_f32(h.x & 0xffffu), x[j][1] = bf16_bits_to_f32(h.x >> 16);
                x[j][2] = bf16_bits_to_f32(h.y & 0xffffu), x[j][3] = bf16_bits_to_f32(h.y >> 16);
            }
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            q[j] = encode4<FP8, KERNEL>(mul_x86(x[j][0], s), mul_x86(x[j][1], s),
                                        mul_x86(x[j][2], s), mul_x86(x[j][3], s));
            if (dst) *(uint32_t *)(dst + (r + j) * cols + c) = q[j];
        }
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            q[j] = 0;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                if (r + j >= rows || c + k >= cols) continue;
                const uint32_t b =
                    encode2<FP8, KERNEL>(mul_x86(load_hp<SRC>(src, (r + j) * cols + c + k), s), 0.0f) & 0xffu;
                q[j] |= b << (8 * k);
                if (dst) dst[(r + j) * cols + c + k] = (uint8_t)b;
            }
        }
    }
    if (!dst_t) return;
    uint32_t t[4];
    transpose4x4(q, t);
#pragma unroll
    for (int k = 0; k < 4; k++) tile_t[4 * tx + k][ty] = t[k];
    __syncthreads();
    const int w = threadIdx.x % 16; /* word: dst_t columns r0 + 4w .. +3 */
#pragma unroll
    for (int pass = 0; pass < 4; pass++) {
        const int cc = pass * 16 + threadIdx.x / 16; /* dst_t row c0 + cc */
        const uint32_t word = tile_t[cc][w];
        if (full) {
            *(uint32_t *)(dst_t + (c0 + cc) * rows + r0 + 4 * w) = word;
        } else if (c0 + cc < cols) {
#pragma unroll
            for (int b = 0; b < 4; b++)
                if (r0 + 4 * w + b < rows) dst_t[(c0 + cc) * rows + r0 + 4 * w + b] = (uint8_t)(word >> (8 * b));
        }
    }
}

/* ---- row-wise (axiswise) quantize (rows, cols) ------------------------------------------ */

constexpr int64_t kWarpRowCols = 1024; /* rows up to this long get a warp, longer ones a block */

/* One row per group of G threads: G = 32 (a warp per row, kThreads / 32 rows
 * per block) for short rows, G = kThreads (the block per row) for long ones.
 * Pass 1 max-reduces |bits| over the row (NaN above inf, as amax_kernel) and
 * every thread of the group derives the same scale from it, as
 * fp8_cpu_quantize_rowwise does (scale_from_amax without the f16 clamp, then
 * the optional power-of-2 rounding); pass 2 reads the row again (from L2 for
 * all but huge rows) and encodes it. `vec` (host-checked: src 16-byte aligned,
 * cols a multiple of the vector width, dst aligned to it) allows 16-byte loads. */
template <int SRC, int FP8, int KERNEL, int G>
__global__ void __launch_bounds__(kThreads)
quantize_rowwise_kernel(uint8_t *__restrict__ dst, float *__restrict__ scale_out,
                        const void *__restrict__ src, int64_t rows, int64_t cols, int round_pow2,
                        bool vec) {
    constexpr int EPV = SRC == FP8_DTYPE_F32 ? 4 : 8;
    constexpr int64_t ES = SRC == FP8_DTYPE_F32 ? 4 : 2;
    const int64_t r = (int64_t)blockIdx.x * (kThreads / G) + threadIdx.x / G;
    const int lane = threadIdx.x % G;
    if (r >= rows) return; /* only when G == 32: the whole warp leaves */
    const void *row = (const uint8_t *)src + r * cols * ES;
    uint8_t *out = dst + r * cols;
    const uint4 *v = (const uint4 *)row;
    const int64_t nvec = vec ? cols / EPV : 0;

    uint32_t m = 0;
    for (int64_t i = lane; i < nvec; i += G) m = fold16<SRC>(m, v[i]);
    if (SRC == FP8_DTYPE_BF16) m = max(m & 0xffffu, m >> 16) << 16;
    for (int64_t j = nvec * EPV + lane; j < cols; j += G) m = max(m, abs_bits<SRC>(row, j));
    m = __reduce_max_sync(0xffffffffu, m);
    if (G > 32) {
        __shared__ uint32_t warp_max[kThreads / 32];
        if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
        __syncthreads();
#pragma unroll
        for (int w = 0; w < G / 32; w++) m = max(m, warp_max[w]);
    }
    if (m > 0x7f800000u) m = 0x7fc00000u; /* NaN made canonical, as the CPU's amax */
    float s = fp8_ref_scale_from_amax(__uint_as_float(m), FP8, 0);
    if (round_pow2) s = fp8_ref_round_down_pow2(s);
    if (lane == 0) scale_out[r] = s;

    for (int64_t i = lane; i < nvec; i += G) encode16<SRC, FP8, KERNEL>(out, i, v[i], s);
    for (int64_t j = nvec * EPV + lane; j < cols; j += G)
        out[j] = (uint8_t)encode2<FP8, KERNEL>(mul_x86(load_hp<SRC>(row, j), s), 0.0f);
}

/* ---- dequantize and unscaled conversion (n), element by element ---------------------------- */

__device__ __forceinline__ float load_any(const void *p, int dt, int64_t i) {
    switch (dt) {
    case FP8_DTYPE_F32: return ((const float *)p)[i];
    case FP8_DTYPE_BF16: return bf16_bits_to_f32(((const uint16_t *)p)[i]);
    case FP8_DTYPE_E5M2: return decode_fp8<FP8_DTYPE_E5M2>(((const uint8_t *)p)[i]);
    default: return decode_fp8<FP8_DTYPE_E4M3FN>(((const uint8_t *)p)[i]);
    }
}

template <int KERNEL>
__device__ __forceinline__ void store_any(void *p, int dt, int64_t i, float v) {
    switch (dt) {
    case FP8_DTYPE_F32: ((float *)p)[i] = v; break;
    case FP8_DTYPE_BF16: ((uint16_t *)p)[i] = f32_to_bf16_bits(v); break;
    case FP8_DTYPE_E5M2: ((uint8_t *)p)[i] = (uint8_t)encode2<FP8_DTYPE_E5M2, KERNEL>(v, 0.0f); break;
    default: ((uint8_t *)p)[i] = (uint8_t)encode2<FP8_DTYPE_E4M3FN, KERNEL>(v, 0.0f); break;
    }
}

/* dst (n) <- src (n) [/ *scale]; the dtypes are warp-uniform run-time values.
 * For fp8 destinations the value is encoded unscaled (fp8_cpu_convert). */
template <int KERNEL>
__global__ void __launch_bounds__(kThreads)
convert_kernel(void *__restrict__ dst, int dst_dt, const void *__restrict__ src, int src_dt,
               int64_t n, const float *scale_p) {
    const float s = scale_p ? *scale_p : 1.0f;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = load_any(src, src_dt, i);
        if (scale_p) v = div_x86(v, s);
        store_any<KERNEL>(dst, dst_dt, i, v);
    }
}

/* ---- delayed scaling ------------------------------------------------------------------------ */

/* One thread per tensor: roll history by one, slot 0 <- amax, scale <- scale
 * of the history's max (torch.max: the first NaN met wins). */
__global__ void sync_amax_history_kernel(float *const *amax, float *const *history,
                                         float *const *scale, const int32_t *fp8_dtype,
                                         const int32_t *clamp_to_f16, int64_t count,
                                         int64_t history_len) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    float *h = history[i];
    const float a = *amax[i]; /* read first: amax may alias a history slot */
    for (int64_t j = history_len - 1; j > 0; j--) h[j] = h[j - 1];
    h[0] = a;
    float hmax = h[0];
    for (int64_t j = 1; j < history_len && !isnan(hmax); j++)
        hmax = isnan(h[j]) || h[j] > hmax ? h[j] : hmax;
    *scale[i] = fp8_ref_scale_from_amax(hmax, fp8_dtype[i], clamp_to_f16[i]);
}

/* ---- launch helpers ------------------------------------------------------------------------- */

template <int SRC, int FP8>
void launch_quantize(const Ctx *ctx, uint8_t *dst, const void *src, int64_t n, int64_t nvec,
                     const float *scale, unsigned grid) {
    if (ctx->cast_kernel == FP8_CUDA_CAST_HARDWARE)
        quantize_kernel<SRC, FP8, FP8_CUDA_CAST_HARDWARE><<<grid, kThreads, 0, ctx->stream>>>(dst, src, n, nvec, scale);
    else
        quantize_kernel<SRC, FP8, FP8_CUDA_CAST_REFERENCE><<<grid, kThreads, 0, ctx->stream>>>(dst, src, n, nvec, scale);
}

template <int SRC, int FP8>
void launch_quantize_transpose(const Ctx *ctx, uint8_t *dst, uint8_t *dst_t, const void *src,
                               int64_t rows, int64_t cols, const float *scale, bool vec) {
    const int64_t col_tiles = (cols + kTile - 1) / kTile;
    const int64_t tiles = ((rows + kTile - 1) / kTile) * col_tiles;
    if (ctx->cast_kernel == FP8_CUDA_CAST_HARDWARE)
        quantize_transpose_kernel<SRC, FP8, FP8_CUDA_CAST_HARDWARE><<<(unsigned)tiles, kThreads, 0, ctx->stream>>>(
            dst, dst_t, src, rows, cols, col_tiles, scale, vec);
    else
        quantize_transpose_kernel<SRC, FP8, FP8_CUDA_CAST_REFERENCE><<<(unsigned)tiles, kThreads, 0, ctx->stream>>>(
            dst, dst_t, src, rows, cols, col_tiles, scale, vec);
}

template <int SRC, int FP8, int KERNEL>
void launch_quantize_rowwise_kernel(const Ctx *ctx, uint8_t *dst, float *scale, const void *src,
                                    int64_t rows, int64_t cols, int round_pow2, bool vec) {
    if (cols <= kWarpRowCols) {
        const unsigned grid = (unsigned)((rows + kThreads / 32 - 1) / (kThreads / 32));
        quantize_rowwise_kernel<SRC, FP8, KERNEL, 32><<<grid, kThreads, 0, ctx->stream>>>(
            dst, scale, src, rows, cols, round_pow2, vec);
    } else {
        quantize_rowwise_kernel<SRC, FP8, KERNEL, kThreads><<<(unsigned)rows, kThreads, 0, ctx->stream>>>(
            dst, scale, src, rows, cols, round_pow2, vec);
    }
}

template <int SRC, int FP8>
void launch_quantize_rowwise(const Ctx *ctx, uint8_t *dst, float *scale, const void *src, int64_t rows,
                             int64_t cols, int round_pow2, bool vec) {
    if (ctx->cast_kernel == FP8_CUDA_CAST_HARDWARE)
        launch_quantize_rowwise_kernel<SRC, FP8, FP8_CUDA_CAST_HARDWARE>(ctx, dst, scale, src, rows, cols, round_pow2, vec);
    else
        launch_quantize_rowwise_kernel<SRC, FP8, FP8_CUDA_CAST_REFERENCE>(ctx, dst, scale, src, rows, cols, round_pow2, vec);
}

/* Elements of n handled by 16-byte vectors when src (and dst, at its own
 * vector width) are aligned; the rest go through the scalar tail. */
int64_t vector_count(const void *src, int src_dt, const void *dst, int dst_bytes_per_vec, int64_t n) {
    const int epv = src_dt == FP8_DTYPE_F32 ? 4 : 8;
    if (!aligned(src, 16) || (dst && !aligned(dst, (uintptr_t)dst_bytes_per_vec))) return 0;
    return n / epv;
}

int32_t launch_amax(const char *fn, Ctx *ctx, float *amax, float *scale, const void *src,
                    int32_t src_dtype, int64_t n, int32_t fp8_dtype, int32_t clamp) {
    const int64_t nvec = vector_count(src, src_dtype, nullptr, 1, n);
    const unsigned grid = grid_for(ctx, nvec > 0 ? nvec : n, kThreads * kUnroll, 4);
    if (src_dtype == FP8_DTYPE_F32)
        amax_kernel<FP8_DTYPE_F32><<<grid, kThreads, 0, ctx->stream>>>(amax, scale, src, n, nvec, ctx->scratch, fp8_dtype, clamp);
    else
        amax_kernel<FP8_DTYPE_BF16><<<grid, kThreads, 0, ctx->stream>>>(amax, scale, src, n, nvec, ctx->scratch, fp8_dtype, clamp);
    FP8_LAUNCH_CHECK(fn, "amax_kernel");
    return FP8_OK;
}

}  // namespace
}  // namespace fp8cuda

using namespace fp8cuda;

extern "C" {

FP8_API int32_t fp8_cuda_amax(fp8_cuda_ctx_t c, float *d_amax, const void *d_src,
                              int32_t src_dtype, int64_t n) {
    static const char fn[] = "fp8_cuda_amax";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(d_amax, fn);
        FP8_CHECK(fp8_check_amax_src(fn, "d_", d_src, src_dtype, n, -1));
        ENTER(fn, c, ctx);
        return launch_amax(fn, ctx, d_amax, nullptr, d_src, src_dtype, n, FP8_DTYPE_E4M3FN, 0);
    });
}

FP8_API int32_t fp8_cuda_amax_to_scale(fp8_cuda_ctx_t c, float *d_amax, float *d_scale,
                                       const void *d_src, int32_t src_dtype, int64_t n,
                                       int32_t fp8_dtype, int32_t clamp_to_f16) {
    static const char fn[] = "fp8_cuda_amax_to_scale";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(d_scale, fn); /* d_amax may be NULL: the scale alone */
        FP8_CHECK(fp8_check_amax_src(fn, "d_", d_src, src_dtype, n, fp8_dtype));
        ENTER(fn, c, ctx);
        return launch_amax(fn, ctx, d_amax, d_scale, d_src, src_dtype, n, fp8_dtype, clamp_to_f16 != 0);
    });
}

FP8_API int32_t fp8_cuda_scale_from_amax(fp8_cuda_ctx_t c, float *d_scale, const float *d_amax,
                                         int32_t fp8_dtype, int32_t clamp_to_f16) {
    static const char fn[] = "fp8_cuda_scale_from_amax";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(d_scale, fn);
        FP8_REQUIRE_PTR(d_amax, fn);
        FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
        ENTER(fn, c, ctx);
        scale_from_amax_kernel<<<1, 1, 0, ctx->stream>>>(d_scale, d_amax, fp8_dtype, clamp_to_f16 != 0);
        FP8_LAUNCH_CHECK(fn, "scale_from_amax_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_round_scales_pow2(fp8_cuda_ctx_t c, float *d_scale, int64_t n) {
    static const char fn[] = "fp8_cuda_round_scales_pow2";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_N(n, fn);
        FP8_REQUIRE_DATA(d_scale, n, fn);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        round_scales_pow2_kernel<<<grid_for(ctx, n, kThreads), kThreads, 0, ctx->stream>>>(d_scale, n);
        FP8_LAUNCH_CHECK(fn, "round_scales_pow2_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_quantize(fp8_cuda_ctx_t c, void *d_dst_fp8, int32_t fp8_dtype,
                                  const void *d_src, int32_t src_dtype, int64_t n,
                                  const float *d_scale) {
    static const char fn[] = "fp8_cuda_quantize";
    return guard(fn, [&]() -> int32_t {
        FP8_CHECK(fp8_check_quantize(fn, "d_", d_dst_fp8, fp8_dtype, d_src, src_dtype, n));
        FP8_REQUIRE_PTR(d_scale, fn);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        uint8_t *dst = (uint8_t *)d_dst_fp8;
        const bool f32 = src_dtype == FP8_DTYPE_F32;
        const int64_t nvec = vector_count(d_src, src_dtype, dst, f32 ? 4 : 8, n);
        const unsigned grid = grid_for(ctx, nvec > 0 ? nvec : n, kThreads * kUnroll, 8);
        with_hp_fp8(src_dtype, fp8_dtype, [&](auto src, auto fp8) {
            launch_quantize<decltype(src)::value, decltype(fp8)::value>(ctx, dst, d_src, n, nvec, d_scale, grid);
        });
        FP8_LAUNCH_CHECK(fn, "quantize_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_quantize_transpose(fp8_cuda_ctx_t c, void *d_dst, void *d_dst_t,
                                            int32_t fp8_dtype, const void *d_src,
                                            int32_t src_dtype, int64_t rows, int64_t cols,
                                            const float *d_scale) {
    static const char fn[] = "fp8_cuda_quantize_transpose";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
        FP8_REQUIRE_HP(src_dtype, "src_dtype", fn);
        FP8_REQUIRE(rows >= 0 && cols >= 0, fn, "rows and cols must be >= 0, got (%lld, %lld)",
                    (long long)rows, (long long)cols);
        const int64_t n = rows * cols;
        FP8_REQUIRE_DATA(d_src, n, fn);
        FP8_REQUIRE_PTR(d_scale, fn);
        FP8_REQUIRE(d_dst != NULL || d_dst_t != NULL || n == 0, fn, "d_dst and d_dst_t are both NULL");
        const int64_t tiles = ((rows + kTile - 1) / kTile) * ((cols + kTile - 1) / kTile);
        FP8_REQUIRE(tiles < ((int64_t)1 << 31), fn, "(%lld, %lld) has too many 64x64 tiles",
                    (long long)rows, (long long)cols);
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        uint8_t *dst = (uint8_t *)d_dst, *dst_t = (uint8_t *)d_dst_t;
        const bool f32 = src_dtype == FP8_DTYPE_F32;
        const bool vec = rows % 4 == 0 && cols % 4 == 0 && aligned(d_src, f32 ? 16 : 8) &&
                         aligned(dst, 4) && aligned(dst_t, 4);
        with_hp_fp8(src_dtype, fp8_dtype, [&](auto src, auto fp8) {
            launch_quantize_transpose<decltype(src)::value, decltype(fp8)::value>(ctx, dst, dst_t, d_src, rows, cols, d_scale, vec);
        });
        FP8_LAUNCH_CHECK(fn, "quantize_transpose_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_quantize_rowwise(fp8_cuda_ctx_t c, void *d_dst_fp8, float *d_scale,
                                          int32_t fp8_dtype, const void *d_src, int32_t src_dtype,
                                          int64_t rows, int64_t cols, int32_t round_pow2) {
    static const char fn[] = "fp8_cuda_quantize_rowwise";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
        FP8_REQUIRE_HP(src_dtype, "src_dtype", fn);
        FP8_REQUIRE(rows >= 0 && cols >= 0, fn, "rows and cols must be >= 0, got (%lld, %lld)",
                    (long long)rows, (long long)cols);
        FP8_REQUIRE(rows <= INT32_MAX, fn, "rows %lld exceeds one block per row (at most %d)",
                    (long long)rows, INT32_MAX);
        const int64_t n = rows * cols;
        FP8_REQUIRE_PTR(d_scale, fn);
        FP8_REQUIRE_DATA(d_dst_fp8, n, fn);
        FP8_REQUIRE_DATA(d_src, n, fn);
        ENTER(fn, c, ctx);
        if (rows == 0) return FP8_OK; /* cols == 0 still writes each row's scale (amax 0) */
        uint8_t *dst = (uint8_t *)d_dst_fp8;
        const bool f32 = src_dtype == FP8_DTYPE_F32;
        const int epv = f32 ? 4 : 8;
        const bool vec = aligned(d_src, 16) && cols % epv == 0 && aligned(dst, (uintptr_t)epv);
        const int pow2 = round_pow2 != 0;
        with_hp_fp8(src_dtype, fp8_dtype, [&](auto src, auto fp8) {
            launch_quantize_rowwise<decltype(src)::value, decltype(fp8)::value>(ctx, dst, d_scale, d_src, rows, cols, pow2, vec);
        });
        FP8_LAUNCH_CHECK(fn, "quantize_rowwise_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_dequantize(fp8_cuda_ctx_t c, void *d_dst, int32_t dst_dtype,
                                    const void *d_src_fp8, int32_t fp8_dtype, int64_t n,
                                    const float *d_scale) {
    static const char fn[] = "fp8_cuda_dequantize";
    return guard(fn, [&]() -> int32_t {
        FP8_CHECK(fp8_check_dequantize(fn, "d_", d_dst, dst_dtype, d_src_fp8, fp8_dtype, n, d_scale));
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        convert_kernel<FP8_CUDA_CAST_REFERENCE><<<grid_for(ctx, n, kThreads * 4), kThreads, 0, ctx->stream>>>(
            d_dst, dst_dtype, d_src_fp8, fp8_dtype, n, d_scale);
        FP8_LAUNCH_CHECK(fn, "convert_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_convert(fp8_cuda_ctx_t c, void *d_dst, int32_t dst_dtype,
                                 const void *d_src, int32_t src_dtype, int64_t n) {
    static const char fn[] = "fp8_cuda_convert";
    return guard(fn, [&]() -> int32_t {
        FP8_CHECK(fp8_check_convert(fn, "d_", d_dst, dst_dtype, d_src, src_dtype, n));
        ENTER(fn, c, ctx);
        if (n == 0) return FP8_OK;
        if (dst_dtype == src_dtype) {
            FP8_CUDA_TRY(fn, "cudaMemcpyAsync",
                         cudaMemcpyAsync(d_dst, d_src, (size_t)n * (size_t)fp8_dtype_size(dst_dtype),
                                         cudaMemcpyDeviceToDevice, ctx->stream));
            return FP8_OK;
        }
        const unsigned grid = grid_for(ctx, n, kThreads * 4);
        if (ctx->cast_kernel == FP8_CUDA_CAST_HARDWARE)
            convert_kernel<FP8_CUDA_CAST_HARDWARE><<<grid, kThreads, 0, ctx->stream>>>(d_dst, dst_dtype, d_src, src_dtype, n, nullptr);
        else
            convert_kernel<FP8_CUDA_CAST_REFERENCE><<<grid, kThreads, 0, ctx->stream>>>(d_dst, dst_dtype, d_src, src_dtype, n, nullptr);
        FP8_LAUNCH_CHECK(fn, "convert_kernel");
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_sync_amax_history(fp8_cuda_ctx_t c, float *const *d_amax,
                                           float *const *d_history, float *const *d_scale,
                                           const int32_t *d_fp8_dtype,
                                           const int32_t *d_clamp_to_f16, int64_t count,
                                           int64_t history_len) {
    static const char fn[] = "fp8_cuda_sync_amax_history";
    return guard(fn, [&]() -> int32_t {
        FP8_CHECK(fp8_check_amax_history_tables(fn, "d_", d_amax, d_history, d_scale, d_fp8_dtype,
                                                d_clamp_to_f16, count, history_len));
        ENTER(fn, c, ctx);
        if (count == 0) return FP8_OK;
        const unsigned grid = (unsigned)((count + 127) / 128);
        sync_amax_history_kernel<<<grid, 128, 0, ctx->stream>>>(d_amax, d_history, d_scale, d_fp8_dtype,
                                                                d_clamp_to_f16, count, history_len);
        FP8_LAUNCH_CHECK(fn, "sync_amax_history_kernel");
        return FP8_OK;
    });
}

/* ---- the two encoders, side by side (issue 16) ------------------------------------- */

}  // extern "C"

namespace fp8cuda {
namespace {
/* Bit patterns k * step (k < count) of an f32 or bf16 value, each multiplied by
 * scale as every cast does (mul_x86), encoded by the reference and by the
 * hardware encoder; res[0] counts the patterns where the bytes differ, res[1]
 * keeps the smallest such pattern. Where the hardware encoder is not compiled
 * (below sm_89, and the emulator) both are the reference. */
template <int FP8>
__global__ void __launch_bounds__(256)
encoder_check_kernel(int src_dt, float scale, uint64_t count, uint64_t step, unsigned *res) {
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t k = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; k < count; k += stride) {
        const uint32_t bits = (uint32_t)(k * step);
        const float x = src_dt == FP8_DTYPE_F32 ? __uint_as_float(bits) : bf16_bits_to_f32(bits & 0xffffu);
        const float y = mul_x86(x, scale);
        const uint32_t ref = encode2<FP8, FP8_CUDA_CAST_REFERENCE>(y, 0.0f) & 0xffu;
        const uint32_t hw = encode2<FP8, FP8_CUDA_CAST_HARDWARE>(y, 0.0f) & 0xffu;
        if (ref != hw) {
            atomicAdd(&res[0], 1u);
            atomicMin(&res[1], bits);
        }
    }
}
}  // namespace
}  // namespace fp8cuda

extern "C" {

FP8_API int32_t fp8_cuda_encoder_check(fp8_cuda_ctx_t c, int32_t fp8_dtype, int32_t src_dtype, float scale,
                                       int64_t step, uint32_t *result) {
    static const char fn[] = "fp8_cuda_encoder_check";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
        FP8_REQUIRE_HP(src_dtype, "src_dtype", fn);
        FP8_REQUIRE(step >= 1, fn, "step must be >= 1, got %lld", (long long)step);
        FP8_REQUIRE_PTR(result, fn);
        ENTER(fn, c, ctx);
        FP8_REQUIRE(!ctx->capturing, fn, "not allowed while capturing a graph");
        const uint64_t patterns = src_dtype == FP8_DTYPE_F32 ? (uint64_t)1 << 32 : (uint64_t)1 << 16;
        const uint64_t count = (patterns + (uint64_t)step - 1) / (uint64_t)step;
        unsigned *res = ctx->scratch + 8; /* [8], [9]: free scratch words */
        const unsigned init[2] = {0u, 0xffffffffu};
        FP8_CUDA_TRY(fn, "cudaMemcpyAsync", cudaMemcpyAsync(res, init, sizeof init, cudaMemcpyHostToDevice, ctx->stream));
        const unsigned grid = grid_for(ctx, (int64_t)std::min<uint64_t>(count, (uint64_t)1 << 40), 256, 16);
        if (fp8_dtype == FP8_DTYPE_E5M2)
            encoder_check_kernel<FP8_DTYPE_E5M2><<<grid, 256, 0, ctx->stream>>>(src_dtype, scale, count, (uint64_t)step, res);
        else
            encoder_check_kernel<FP8_DTYPE_E4M3FN><<<grid, 256, 0, ctx->stream>>>(src_dtype, scale, count, (uint64_t)step, res);
        FP8_LAUNCH_CHECK(fn, "encoder_check_kernel");
        unsigned out[2];
        FP8_CUDA_TRY(fn, "cudaMemcpyAsync", cudaMemcpyAsync(out, res, sizeof out, cudaMemcpyDeviceToHost, ctx->stream));
        FP8_CUDA_TRY(fn, "cudaStreamSynchronize", cudaStreamSynchronize(ctx->stream));
        result[0] = out[0];
        result[1] = out[1];
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_get_cast_kernel(fp8_cuda_ctx_t c, int32_t *kernel) {
    static const char fn[] = "fp8_cuda_get_cast_kernel";
    FP8_REQUIRE(c != NULL, fn, "ctx is NULL");
    FP8_REQUIRE_PTR(kernel, fn);
    *kernel = unwrap(c)->cast_kernel;
    return FP8_OK;
}

}  // extern "C"
