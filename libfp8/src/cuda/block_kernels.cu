/*
 * block_kernels.cu — block-scaled fp8 casts on the device, the twins of
 * libfp8/src/cpu/block_cast.c: blocks of block_rows x block_cols with f32
 * scales (1x128 activations, 128x128 weights: DeepSeek-V3 / torchao's
 * blockwise_fp8_training) and MX blocks of `block` elements along a row with
 * an e8m0 shared exponent (OCP MX v1.0, FLOOR and RCEIL). See
 * docs/architecture.md (block scaling; block scaling on the device).
 *
 * Bit for bit with the CPU: every scale comes from block_ref.h (the same
 * scalar functions the CPU calls), the amax is an integer max over |bits| (NaN
 * wins and is made canonical), the quantize is one IEEE f32 multiply with x86
 * NaN rules (mul_x86) and the fp8_ref.h encoder (or the hardware cvt with the
 * same results), and the decode is one f32 multiply by the block's multiplier.
 * Edge blocks are clipped to the matrix, as on the CPU.
 *
 * Quantize: G threads per scale block (a warp for blocks of at most 1024
 * elements, e.g. 1x128 and MX's 1x32; the whole 256-thread CTA for larger
 * ones, e.g. 128x128); a first pass reduces the block's amax, a second
 * multiplies and encodes (the block is then in L1/L2). Dequantize: one CTA
 * per row at a time, threads along the columns. Index arithmetic is 32-bit
 * below 2^31 elements.
 */
#include <type_traits>

#include "block_ref.h"
#include "cast_checks.h"
#include "cuda_common.cuh"

namespace fp8cuda {
namespace {

constexpr int kBlockThreads = 256;
/* Scale rule of a quantize launch: f32 blocks, or MX with the FLOOR / RCEIL exponent. */
enum { kRuleF32 = 0, kRuleMxFloor = 1, kRuleMxRceil = 2 };
/* Blocks above this many elements get a whole CTA, smaller ones a warp. */
constexpr int64_t kWarpBlockElems = 1024;

template <int SRC>
__device__ __forceinline__ float block_load(const void *src, int64_t i) {
    if (SRC == FP8_DTYPE_F32) return ((const float *)src)[i];
    return bf16_bits_to_f32(((const uint16_t *)src)[i]);
}
template <int SRC>
__device__ __forceinline__ uint32_t block_abs_bits(const void *src, int64_t i) {
    if (SRC == FP8_DTYPE_F32) return __float_as_uint(((const float *)src)[i]) & 0x7fffffffu;
    return ((uint32_t)((const uint16_t *)src)[i] & 0x7fffu) << 16;
}

/* dst_fp8 (rows, cols) and the scales (nbr, nbc) row-major <- the block casts.
 * Scale block b covers rows (b / nbc) * br.. and cols (b % nbc) * bc.., clipped. */
template <int SRC, int FP8, int KERNEL, int RULE, int G, class I>
__global__ void __launch_bounds__(kBlockThreads)
block_quantize_kernel(uint8_t *__restrict__ dst, void *__restrict__ scale_out, const void *__restrict__ src,
                      I rows, I cols, I br, I bc, I nbc, I nblocks) {
    constexpr int kPerCta = kBlockThreads / G;
    __shared__ uint32_t warp_max[kBlockThreads / 32];
    const int t = threadIdx.x % G;
    for (I b = (I)blockIdx.x * kPerCta + threadIdx.x / G; b < nblocks; b += (I)gridDim.x * kPerCta) {
        const I r0 = (b / nbc) * br, c0 = (b % nbc) * bc;
        const I rlen = r0 + br < rows ? br : rows - r0;
        const I clen = c0 + bc < cols ? bc : cols - c0;
        const I count = rlen * clen;
        /* element e of the block: row r0 + e / clen, col c0 + e % clen */
        auto index = [&](I e) -> I {
            return rlen == 1 ? r0 * cols + c0 + e : (r0 + e / clen) * cols + c0 + e % clen;
        };
        uint32_t m = 0;
        for (I e = t; e < count; e += G) m = max(m, block_abs_bits<SRC>(src, (int64_t)index(e)));
        m = __reduce_max_sync(0xffffffffu, m);
        if (G > 32) {
            __syncthreads(); /* the previous block's readers are done with warp_max */
            if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
            __syncthreads();
            m = 0;
#pragma unroll
            for (int w = 0; w < kBlockThreads / 32; w++) m = max(m, warp_max[w]);
        }
        const float amax = __uint_as_float(m > 0x7f800000u ? 0x7fc00000u : m);
        bool nan_block;
        float mult;
        if (RULE == kRuleF32) {
            const float scale = fp8_ref_scale_from_amax(amax, FP8, 0);
            if (t == 0) ((float *)scale_out)[b] = __fdiv_rn(1.0f, scale);
            nan_block = amax != amax;
            mult = scale;
        } else {
            const uint8_t e8 = fp8_mx_scale_from_amax(amax, FP8, RULE == kRuleMxRceil ? FP8_MX_RCEIL : FP8_MX_FLOOR);
            if (t == 0) ((uint8_t *)scale_out)[b] = e8;
            nan_block = e8 == FP8_E8M0_NAN;
            mult = fp8_e8m0_reciprocal(e8);
        }
        for (I e = t; e < count; e += G) {
            const int64_t i = (int64_t)index(e);
            const float x = block_load<SRC>(src, i);
            dst[i] = nan_block ? fp8_mx_nan_block_code(x) : (uint8_t)encode2<FP8, KERNEL>(mul_x86(x, mult), 0.0f);
        }
    }
}

/* decode(v) * mult as the CPU's f32 loop gives it (x86: a NaN operand comes
 * back quieted, the decoded value first; inf * 0 is the indefinite NaN). */
__device__ __forceinline__ float block_decode_mul(float v, float mult) {
    const float y = __fmul_rn(v, mult);
    return isnan(y) ? x86_nan(v, mult) : y;
}

/* dst (rows, cols) F32/BF16 <- decode(src_fp8) * the multiplier of its block:
 * scales[(r / br) * nbc + c / bc] (f32), or 2^(E-127) of the e8m0 byte (E8M0). */
template <int DST, int FP8, bool E8M0, class I>
__global__ void __launch_bounds__(kBlockThreads)
block_dequantize_kernel(void *__restrict__ dst, const uint8_t *__restrict__ src, const void *__restrict__ scales,
                        I rows, I cols, I br, I bc, I nbc) {
    for (I r = blockIdx.x; r < rows; r += gridDim.x) {
        const I srow = (r / br) * nbc;
        for (I c = threadIdx.x; c < cols; c += blockDim.x) {
            const I s = srow + c / bc, i = r * cols + c;
            const float mult = E8M0 ? fp8_e8m0_to_f32(((const uint8_t *)scales)[s]) : ((const float *)scales)[s];
            const float y = block_decode_mul(decode_fp8<FP8>(src[i]), mult);
            if (DST == FP8_DTYPE_F32)
                ((float *)dst)[i] = y;
            else
                ((uint16_t *)dst)[i] = f32_to_bf16_bits(y);
        }
    }
}

/* ---- launchers ---------------------------------------------------------------- */

/* Index arithmetic in 32 bits below 2^31 elements (a 64-bit division costs tens of
 * instructions per element), in 64 bits above. Block sizes are clamped to the matrix. */
inline bool small_index(int64_t rows, int64_t cols) { return rows * cols < ((int64_t)1 << 31); }

template <int SRC, int FP8, int KERNEL, int RULE, class I>
void launch_block_quantize(const Ctx *ctx, uint8_t *dst, void *scale, const void *src, int64_t rows,
                           int64_t cols, int64_t br, int64_t bc) {
    br = br < rows ? br : rows, bc = bc < cols ? bc : cols; /* same blocks, and the sizes fit I */
    const int64_t nbr = (rows + br - 1) / br, nbc = (cols + bc - 1) / bc, nblocks = nbr * nbc;
    if (br * bc > kWarpBlockElems) {
        const unsigned grid = grid_for(ctx, nblocks, 1, 16);
        block_quantize_kernel<SRC, FP8, KERNEL, RULE, kBlockThreads, I><<<grid, kBlockThreads, 0, ctx->stream>>>(
            dst, scale, src, (I)rows, (I)cols, (I)br, (I)bc, (I)nbc, (I)nblocks);
    } else {
        const unsigned grid = grid_for(ctx, nblocks, kBlockThreads / 32, 16);
        block_quantize_kernel<SRC, FP8, KERNEL, RULE, 32, I><<<grid, kBlockThreads, 0, ctx->stream>>>(
            dst, scale, src, (I)rows, (I)cols, (I)br, (I)bc, (I)nbc, (I)nblocks);
    }
}

template <int RULE>
int32_t block_quantize(const char *fn, Ctx *ctx, void *dst, void *scale, int32_t fp8_dtype, const void *src,
                       int32_t src_dtype, int64_t rows, int64_t cols, int64_t br, int64_t bc) {
    if (rows * cols == 0) return FP8_OK;
    with_hp_fp8(src_dtype, fp8_dtype, [&](auto s, auto f) {
        constexpr int S = decltype(s)::value, F = decltype(f)::value;
        const bool small = small_index(rows, cols);
        if (ctx->cast_kernel == FP8_CUDA_CAST_HARDWARE) {
            if (small) launch_block_quantize<S, F, FP8_CUDA_CAST_HARDWARE, RULE, uint32_t>(ctx, (uint8_t *)dst, scale, src, rows, cols, br, bc);
            else launch_block_quantize<S, F, FP8_CUDA_CAST_HARDWARE, RULE, int64_t>(ctx, (uint8_t *)dst, scale, src, rows, cols, br, bc);
        } else {
            if (small) launch_block_quantize<S, F, FP8_CUDA_CAST_REFERENCE, RULE, uint32_t>(ctx, (uint8_t *)dst, scale, src, rows, cols, br, bc);
            else launch_block_quantize<S, F, FP8_CUDA_CAST_REFERENCE, RULE, int64_t>(ctx, (uint8_t *)dst, scale, src, rows, cols, br, bc);
        }
    });
    FP8_LAUNCH_CHECK(fn, "block_quantize_kernel");
    return FP8_OK;
}

template <int DST, int FP8, bool E8M0, class I>
void launch_block_dequantize(const Ctx *ctx, unsigned grid, void *dst, const void *src, const void *scales,
                             int64_t rows, int64_t cols, int64_t br, int64_t bc, int64_t nbc) {
    br = br < rows ? br : rows, bc = bc < cols ? bc : cols; /* the same blocks (nbc is computed before) */
    block_dequantize_kernel<DST, FP8, E8M0, I><<<grid, kBlockThreads, 0, ctx->stream>>>(
        dst, (const uint8_t *)src, scales, (I)rows, (I)cols, (I)br, (I)bc, (I)nbc);
}

template <bool E8M0>
int32_t block_dequantize(const char *fn, Ctx *ctx, void *dst, int32_t dst_dtype, const void *src,
                         int32_t fp8_dtype, const void *scales, int64_t rows, int64_t cols, int64_t br,
                         int64_t bc) {
    if (rows * cols == 0) return FP8_OK;
    const int64_t nbc = (cols + bc - 1) / bc;
    const unsigned grid = grid_for(ctx, rows, 1, 16);
    const bool small = small_index(rows, cols);
    with_hp_fp8(dst_dtype, fp8_dtype, [&](auto d, auto f) {
        constexpr int D = decltype(d)::value, F = decltype(f)::value;
        if (small) launch_block_dequantize<D, F, E8M0, uint32_t>(ctx, grid, dst, src, scales, rows, cols, br, bc, nbc);
        else launch_block_dequantize<D, F, E8M0, int64_t>(ctx, grid, dst, src, scales, rows, cols, br, bc, nbc);
    });
    FP8_LAUNCH_CHECK(fn, "block_dequantize_kernel");
    return FP8_OK;
}

}  // namespace
}  // namespace fp8cuda

using namespace fp8cuda;

extern "C" {

FP8_API int32_t fp8_cuda_quantize_blockwise(fp8_cuda_ctx_t c, void *d_dst_fp8, float *d_inv_scale,
                                            int32_t fp8_dtype, const void *d_src, int32_t src_dtype,
                                            int64_t rows, int64_t cols, int64_t block_rows,
                                            int64_t block_cols) {
    static const char fn[] = "fp8_cuda_quantize_blockwise";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
        FP8_REQUIRE_HP(src_dtype, "src_dtype", fn);
        FP8_CHECK(fp8_check_block_dims(fn, rows, cols, block_rows, block_cols));
        FP8_CHECK(fp8_check_block_ptrs(fn, "d_", rows * cols, d_dst_fp8, "dst_fp8", d_inv_scale, "inv_scale",
                                       d_src, "src"));
        ENTER(fn, c, ctx);
        return block_quantize<kRuleF32>(fn, ctx, d_dst_fp8, d_inv_scale, fp8_dtype, d_src, src_dtype, rows, cols,
                                        block_rows, block_cols);
    });
}

FP8_API int32_t fp8_cuda_dequantize_blockwise(fp8_cuda_ctx_t c, void *d_dst, int32_t dst_dtype,
                                              const void *d_src_fp8, int32_t fp8_dtype,
                                              const float *d_inv_scale, int64_t rows, int64_t cols,
                                              int64_t block_rows, int64_t block_cols) {
    static const char fn[] = "fp8_cuda_dequantize_blockwise";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
        FP8_REQUIRE_HP(dst_dtype, "dst_dtype", fn);
        FP8_CHECK(fp8_check_block_dims(fn, rows, cols, block_rows, block_cols));
        FP8_CHECK(fp8_check_block_ptrs(fn, "d_", rows * cols, d_dst, "dst", d_inv_scale, "inv_scale", d_src_fp8,
                                       "src_fp8"));
        ENTER(fn, c, ctx);
        return block_dequantize<false>(fn, ctx, d_dst, dst_dtype, d_src_fp8, fp8_dtype, d_inv_scale, rows, cols,
                                       block_rows, block_cols);
    });
}

FP8_API int32_t fp8_cuda_quantize_mx(fp8_cuda_ctx_t c, void *d_dst_fp8, uint8_t *d_scale_e8m0,
                                     int32_t fp8_dtype, const void *d_src, int32_t src_dtype, int64_t rows,
                                     int64_t cols, int64_t block, int32_t mode) {
    static const char fn[] = "fp8_cuda_quantize_mx";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
        FP8_REQUIRE_HP(src_dtype, "src_dtype", fn);
        FP8_CHECK(fp8_check_mx_mode(fn, mode));
        FP8_CHECK(fp8_check_block_dims(fn, rows, cols, 1, block));
        FP8_CHECK(fp8_check_block_ptrs(fn, "d_", rows * cols, d_dst_fp8, "dst_fp8", d_scale_e8m0, "scale_e8m0",
                                       d_src, "src"));
        ENTER(fn, c, ctx);
        if (mode == FP8_MX_RCEIL)
            return block_quantize<kRuleMxRceil>(fn, ctx, d_dst_fp8, d_scale_e8m0, fp8_dtype, d_src, src_dtype, rows,
                                                cols, 1, block);
        return block_quantize<kRuleMxFloor>(fn, ctx, d_dst_fp8, d_scale_e8m0, fp8_dtype, d_src, src_dtype, rows,
                                            cols, 1, block);
    });
}

FP8_API int32_t fp8_cuda_dequantize_mx(fp8_cuda_ctx_t c, void *d_dst, int32_t dst_dtype, const void *d_src_fp8,
                                       int32_t fp8_dtype, const uint8_t *d_scale_e8m0, int64_t rows,
                                       int64_t cols, int64_t block) {
    static const char fn[] = "fp8_cuda_dequantize_mx";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_FP8(fp8_dtype, "fp8_dtype", fn);
        FP8_REQUIRE_HP(dst_dtype, "dst_dtype", fn);
        FP8_CHECK(fp8_check_block_dims(fn, rows, cols, 1, block));
        FP8_CHECK(fp8_check_block_ptrs(fn, "d_", rows * cols, d_dst, "dst", d_scale_e8m0, "scale_e8m0", d_src_fp8,
                                       "src_fp8"));
        ENTER(fn, c, ctx);
        return block_dequantize<true>(fn, ctx, d_dst, dst_dtype, d_src_fp8, fp8_dtype, d_scale_e8m0, rows, cols, 1,
                                      block);
    });
}

}  // extern "C"
