/*
 * fp8.h — the one public header of libfp8, the C-ABI library behind the
 * `float8` TypeScript package (bound with bun:ffi in src/ffi/).
 *
 * Build: cmake -S . -B build && cmake --build build   (gives build/libfp8.so)
 *
 * ABI rules (see docs/architecture.md, "C ABI" and "Error model"):
 *  - every function returns int32_t status: FP8_OK (0) or a negative FP8_ERR_*;
 *    results go through out-params; fp8_last_error() then holds a thread-local
 *    message naming the function and the problem.
 *  - the library never aborts, exits or prints; C++ entry points catch everything.
 *  - fixed-width types and pointers only; sizes are int64_t; enums append-only.
 *  - the library frees what it allocates; caller memory is borrowed for one call.
 *  - all tensors are dense, row-major (C-contiguous) unless strides are given.
 *  - fp8 scaling convention (torchao): fp8 = sat_rne(f32(x) * scale),
 *    x ~= f32(fp8) / scale, scale = f32(fp8_max / max(f64(amax), 1e-12)).
 */
#ifndef FP8_H
#define FP8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define FP8_API __declspec(dllexport)
#else
#define FP8_API __attribute__((visibility("default")))
#endif

/* ---- status codes ------------------------------------------------------ */
enum {
    FP8_OK = 0,
    FP8_ERR_INVALID_ARG = -1, /* null pointer, bad size, unknown enum value  */
    FP8_ERR_OUT_OF_MEMORY = -2,
    FP8_ERR_UNSUPPORTED = -3, /* valid request this build cannot do          */
    FP8_ERR_BACKEND = -4,     /* oneDNN / CUDA / cuBLAS / MPI reported error  */
    FP8_ERR_INTERNAL = -5,
};

/* ---- dtypes (torch names in comments) ---------------------------------- */
enum {
    FP8_DTYPE_F32 = 0,    /* torch.float32                               */
    FP8_DTYPE_BF16 = 1,   /* torch.bfloat16                              */
    FP8_DTYPE_E4M3FN = 2, /* torch.float8_e4m3fn: max 448, no inf, NaN=0x7F/0xFF */
    FP8_DTYPE_E5M2 = 3,   /* torch.float8_e5m2: max 57344, IEEE inf/NaN  */
    FP8_DTYPE_I32 = 4,    /* int32 (indices, targets)                    */
    FP8_DTYPE_U8 = 5,     /* uint8 (masks)                               */
    /* AMD MI300's fp8 formats (CPU kernels only; CUDA entry points reject them):
     * no inf, no negative zero, one NaN (0x80), exponent biases 8 and 16. */
    FP8_DTYPE_E4M3FNUZ = 9,  /* torch.float8_e4m3fnuz: max 240   */
    FP8_DTYPE_E5M2FNUZ = 10, /* torch.float8_e5m2fnuz: max 57344 */
    /* torch.float16 as a high-precision dtype: the CPU casts, conversions, matmul,
     * binary ops, reductions and optimizer steps take it (others reject it). */
    FP8_DTYPE_F16 = 11,
};

/* ---- core: errors, memory, threads ------------------------------------ */

/* Thread-local message of the last failed call on this thread ("" if none).
 * Owned by the library; valid until the next failing call on this thread. */
FP8_API const char *fp8_last_error(void);

/* Library version as major*10000 + minor*100 + patch. */
FP8_API int32_t fp8_version(int32_t *out);

/* Allocate nbytes (>= 0) aligned to 64 bytes; *out receives the pointer
 * (a valid unique pointer even for 0 bytes). Free with fp8_free. */
FP8_API int32_t fp8_alloc(int64_t nbytes, void **out);
/* Free memory from fp8_alloc. NULL is a no-op. */
FP8_API int32_t fp8_free(void *p);
/* Live bytes and live allocation count of fp8_alloc'd memory (blocks in use). */
FP8_API int32_t fp8_memory_stats(int64_t *live_bytes, int64_t *live_allocs);
/* Bytes held in the allocator's cache of freed large blocks (reused by later
 * fp8_alloc calls of the same size class; see libfp8/src/core/alloc.c). */
FP8_API int32_t fp8_memory_cached(int64_t *cached_bytes);
/* Returns every cached block to the system. */
FP8_API int32_t fp8_empty_cache(void);

/* OpenMP threads used by CPU kernels (n >= 1). */
FP8_API int32_t fp8_set_num_threads(int32_t n);
FP8_API int32_t fp8_get_num_threads(int32_t *out);

/* Which vector path the fp8 kernels take: 0 portable, 1 AVX2, 2 AVX-512.
 * fp8_cpu_set_isa caps it (tests run every path and compare bit for bit). */
FP8_API int32_t fp8_cpu_get_isa(int32_t *out);
FP8_API int32_t fp8_cpu_set_isa(int32_t max_isa);

/* ---- fp8 kernels (ours, libfp8/src/cpu/cast.c) -------------------------- */
/* Every CPU cast entry point below also takes the fnuz formats (E4M3FNUZ,
 * E5M2FNUZ) wherever it takes E4M3FN / E5M2, and F16 wherever it takes F32 /
 * BF16 (through exact f32 widening); their CUDA twins take only the originals. */

/* dst (n) <- src (n) converted between any of F32, BF16, E4M3FN, E5M2 without
 * scaling: to bf16 and to fp8 round to nearest even (fp8 saturates to +-max,
 * NaN stays NaN); from fp8 decoding is exact. */
FP8_API int32_t fp8_cpu_convert(void *dst, int32_t dst_dtype, const void *src,
                                int32_t src_dtype, int64_t n);

/* Quantize: dst_fp8 (n) <- sat_rne(f32(src) * scale), src F32 or BF16,
 * fp8_dtype E4M3FN or E5M2. `scale` points at one float. */
FP8_API int32_t fp8_cpu_quantize(void *dst_fp8, int32_t fp8_dtype, const void *src,
                                 int32_t src_dtype, int64_t n, const float *scale);

/* Dequantize: dst (n) <- round_to_dst(f32(decode(src_fp8)) / scale),
 * dst F32 or BF16. `scale` points at one float. */
FP8_API int32_t fp8_cpu_dequantize(void *dst, int32_t dst_dtype, const void *src_fp8,
                                   int32_t fp8_dtype, int64_t n, const float *scale);

/* amax: *out <- max |src| over n elements (F32 or BF16); NaN propagates; 0 for n == 0. */
FP8_API int32_t fp8_cpu_amax(float *out, const void *src, int32_t src_dtype, int64_t n);

/* Fused amax and scale: *amax_out <- max|src|,
 * *scale_out <- f32(fp8_max(fp8_dtype) / max(f64(amax), 1e-12)),
 * clamped to 65504 when clamp_to_f16 != 0 (original dtype float16). */
FP8_API int32_t fp8_cpu_amax_to_scale(float *amax_out, float *scale_out, const void *src,
                                      int32_t src_dtype, int64_t n, int32_t fp8_dtype,
                                      int32_t clamp_to_f16);

/* Delayed scaling, all tensors in one call. For each i < count:
 *   history[i] (history_len floats) rolls by one (slot k -> k+1, last dropped),
 *   history[i][0] <- *amax[i];  *scale[i] <- scale of max(history[i]) for fp8_dtype[i]
 *   (clamped to 65504 where clamp_to_f16[i] != 0).
 * amax/history/scale are arrays of `count` pointers to floats. */
FP8_API int32_t fp8_cpu_sync_amax_history(float *const *amax, float *const *history,
                                          float *const *scale, const int32_t *fp8_dtype,
                                          const int32_t *clamp_to_f16, int64_t count,
                                          int64_t history_len);

/* Quantize and decode in one pass: dst_fp8 (n) <- sat_rne(f32(src) * scale) as
 * fp8_quantize does, and dst_decoded (n) BF16 <- the exact value of each fp8
 * byte (unscaled), which is what the CPU's bf16 GEMM consumes. */
FP8_API int32_t fp8_cpu_quantize_decode(void *dst_fp8, void *dst_decoded, int32_t fp8_dtype,
                                        const void *src, int32_t src_dtype, int64_t n,
                                        const float *scale);

/* Quantize with both layouts in one pass (issue 14; the CPU twin of
 * fp8_cuda_quantize_transpose): src (rows, cols) F32/BF16 row-major, each
 * output optional (NULL skips it, at least one given): dst_fp8 (rows, cols)
 * <- sat_rne(f32(src) * *scale) as fp8_cpu_quantize writes it, dst_fp8_t
 * (cols, rows) <- the same bytes transposed, dst_decoded (rows, cols) BF16 and
 * dst_decoded_t (cols, rows) BF16 <- the exact value of each fp8 byte
 * (unscaled), in the layout the CPU's bf16 GEMM reads fastest. */
FP8_API int32_t fp8_cpu_quantize_transpose(void *dst_fp8, void *dst_fp8_t, void *dst_decoded,
                                           void *dst_decoded_t, int32_t fp8_dtype,
                                           const void *src, int32_t src_dtype, int64_t rows,
                                           int64_t cols, const float *scale);

/* Delayed scaling's cast in one pass: dst_fp8 (n) <- sat_rne(f32(src) * *scale),
 * dst_decoded (n) BF16 <- the exact value of each fp8 byte when non-NULL, and
 * *amax_out <- max |src| (NaN if any), as fp8_cpu_amax gives it: the amax the
 * next fp8_cpu_sync_amax_history reads. */
FP8_API int32_t fp8_cpu_quantize_amax(void *dst_fp8, void *dst_decoded, int32_t fp8_dtype,
                                      const void *src, int32_t src_dtype, int64_t n,
                                      const float *scale, float *amax_out);

/* Dynamic scaling in one call: *amax_out <- max |src| (NaN if any; amax_out may
 * be NULL), *scale_out
 * <- the scale fp8_cpu_amax_to_scale gives for it (rounded down to a power of
 * two when round_pow2 != 0), dst_fp8 (n) <- sat_rne(f32(src) * scale) and,
 * when dst_decoded is non-NULL, dst_decoded (n) BF16 <- the exact value of each
 * fp8 byte. Equal bit for bit to fp8_cpu_amax_to_scale then
 * fp8_cpu_quantize_decode (or fp8_cpu_quantize), but src is read from memory
 * once: each thread quantizes the share whose amax it took. */
FP8_API int32_t fp8_cpu_quantize_dynamic(void *dst_fp8, void *dst_decoded, int32_t fp8_dtype,
                                         const void *src, int32_t src_dtype, int64_t n,
                                         float *amax_out, float *scale_out, int32_t clamp_to_f16,
                                         int32_t round_pow2);

/* Telemetry of a cast src (rows, cols) F32/BF16 -> src_fp8 with scale[0]
 * (per_row == 0) or scale[r] per row: *clipped <- elements the cast clamped
 * (|x*scale| past max + half an ulp), *underflow <- nonzero x that became 0,
 * *ref_sq <- sum x^2, *err_sq <- sum (x - fp8/scale)^2 (the SQNR's terms). */
FP8_API int32_t fp8_cpu_cast_stats(int64_t *clipped, int64_t *underflow, double *ref_sq,
                                   double *err_sq, const void *src, int32_t src_dtype,
                                   const void *src_fp8, int32_t fp8_dtype, const float *scale,
                                   int32_t per_row, int64_t rows, int64_t cols);

/* Counts for fp8 telemetry over src_fp8 (n): zeros (+-0), saturated (+-max),
 * nan. Out-params are int64. */
FP8_API int32_t fp8_cpu_fp8_stats(int64_t *zeros, int64_t *saturated, int64_t *nans,
                                  const void *src_fp8, int32_t fp8_dtype, int64_t n);

/* ---- axiswise (row-wise) scaling (libfp8/src/cpu/rowwise.c) ----------- */

/* Row-wise dynamic quantize: src (rows, cols) F32/BF16 -> dst_fp8 (rows, cols),
 * one scale per row: scale[r] = f32(fp8_max / max(f64(amax_r), 1e-12)),
 * rounded down to a power of two when round_pow2 != 0 (then scaling is exact);
 * dst = sat_rne(f32(x) * scale[r]). scale (rows) f32 out. */
FP8_API int32_t fp8_cpu_quantize_rowwise(void *dst_fp8, float *scale, int32_t fp8_dtype,
                                         const void *src, int32_t src_dtype, int64_t rows,
                                         int64_t cols, int32_t round_pow2);

/* Row-scaled fp8 GEMM, emulated exactly: acc = decode(a) @ decode(b) in f32
 * (oneDNN bf16 GEMM), then the epilogue c[i,j] = acc * (1/scale_a[i]) * (1/scale_b[j]) + bias[j].
 *   a: (M, K), or (K, M) stored when trans_a; b: (K, N), or (N, K) stored when trans_b.
 *   scale_a (M), scale_b (N) f32; c F32 or BF16; bias NULL or (N). */
FP8_API int32_t fp8_cpu_scaled_mm_rowwise(void *c, int32_t c_dtype, const void *a,
                                          int32_t a_dtype, const void *b, int32_t b_dtype,
                                          const float *scale_a, const float *scale_b,
                                          const void *bias, int32_t bias_dtype, int64_t M,
                                          int64_t K, int64_t N, int32_t trans_a,
                                          int32_t trans_b);

/* ---- block scaling (libfp8/src/cpu/block_cast.c; rules in src/core/block_ref.h) ----
 * src/dst matrices (rows, cols) row-major; blocks of block_rows x block_cols
 * (edge blocks clipped); scales row-major (ceil(rows/br), ceil(cols/bc)).
 * Bit-identical on every ISA (fp8_cpu_set_isa). */
enum { FP8_MX_FLOOR = 0, FP8_MX_RCEIL = 1 }; /* torchao's ScaleCalculationMode */

/* f32-scaled blocks (1x128 activations, 128x128 weights): per block
 * scale = f32(fp8_max / max(f64(amax), 1e-12)), dst = sat_rne(f32(x) * scale);
 * inv_scale[b] <- f32(1 / scale) (the dequantize multiplier, torchao's layout). */
FP8_API int32_t fp8_cpu_quantize_blockwise(void *dst_fp8, float *inv_scale, int32_t fp8_dtype,
                                           const void *src, int32_t src_dtype, int64_t rows,
                                           int64_t cols, int64_t block_rows, int64_t block_cols);
/* dst (F32/BF16) <- round_to_dst(f32(decode(src_fp8)) * inv_scale[block]). */
FP8_API int32_t fp8_cpu_dequantize_blockwise(void *dst, int32_t dst_dtype, const void *src_fp8,
                                             int32_t fp8_dtype, const float *inv_scale,
                                             int64_t rows, int64_t cols, int64_t block_rows,
                                             int64_t block_cols);
/* MX blocks of `block` elements along cols (MXFP8: 32), e8m0 scales (uint8,
 * 2^(E-127), 0xFF NaN): mode FP8_MX_FLOOR (OCP spec) or FP8_MX_RCEIL;
 * dst = sat_rne(f32(x) * 2^(127-E)). */
FP8_API int32_t fp8_cpu_quantize_mx(void *dst_fp8, uint8_t *scale_e8m0, int32_t fp8_dtype,
                                    const void *src, int32_t src_dtype, int64_t rows,
                                    int64_t cols, int64_t block, int32_t mode);
/* dst (F32/BF16) <- round_to_dst(f32(decode(src_fp8)) * 2^(E-127)). */
FP8_API int32_t fp8_cpu_dequantize_mx(void *dst, int32_t dst_dtype, const void *src_fp8,
                                      int32_t fp8_dtype, const uint8_t *scale_e8m0, int64_t rows,
                                      int64_t cols, int64_t block);
/* *out <- the e8m0 scale of a block with this amax (the scalar rule, for tests). */
FP8_API int32_t fp8_cpu_mx_scale(uint8_t *out, float amax, int32_t fp8_dtype, int32_t mode);
/* *out <- 1 where the CPU multiplies bf16 natively (AVX-512 BF16), else 0: the block-scaled
 * Linear then runs MX GEMMs on exact bf16 decodes. */
FP8_API int32_t fp8_cpu_bf16_native(int32_t *out);
/* [end block scaling] */

/* ---- fp8-weight GEMV for inference (libfp8/src/cpu/gemv_fp8.c) ----------
 * y (M, N) <- x (M, K) @ (decode(w_fp8) (N, K) with its scales)^T + bias, for
 * 1 <= M <= 16 (the memory-bound decode step; larger M: dequantize and use
 * fp8_cpu_matmul). The weight is decoded in registers, sums are f32.
 * scale (dequantize multipliers, value = fp8 * s): NONE; TENSOR (1 float);
 * ROW (N floats, one per output feature); BLOCK ((N/br) x (K/bc) grid,
 * fp8_cpu_quantize_blockwise's inv_scale). x, y, bias F32 or BF16. */
enum { FP8_GEMV_SCALE_NONE = 0, FP8_GEMV_SCALE_TENSOR = 1, FP8_GEMV_SCALE_ROW = 2, FP8_GEMV_SCALE_BLOCK = 3 };
FP8_API int32_t fp8_cpu_gemv_fp8w(void *y, int32_t y_dtype, const void *x, int32_t x_dtype, int64_t M,
                                  int64_t K, const void *w_fp8, int32_t w_dtype, int64_t N,
                                  int32_t scale_mode, const float *scale, int64_t block_rows,
                                  int64_t block_cols, const void *bias, int32_t bias_dtype);
/* [end fp8-weight GEMV] */

/* ---- GEMM (oneDNN, libfp8/src/cpu/matmul.cpp) -------------------------- */

/* c (batch, M, N) <- alpha * op(a) @ op(b) + bias + beta * c
 *   a: (batch_a, M, K), or (batch_a, K, M) stored when trans_a != 0
 *   b: (batch_b, K, N), or (batch_b, N, K) stored when trans_b != 0
 *   batch_a, batch_b >= 1 and equal, or one of them 1 (broadcast);
 *   batch = max(batch_a, batch_b).
 *   dtypes: a and b both F32 or both BF16 (f32 accumulation), c F32 or BF16.
 *   bias: NULL or (N) of bias_dtype (F32/BF16), added in f32 before rounding.
 *   beta: 0 (overwrite) or 1 (accumulate into c). */
FP8_API int32_t fp8_cpu_matmul(void *c, int32_t c_dtype, const void *a, const void *b,
                               int32_t ab_dtype, const void *bias, int32_t bias_dtype,
                               int64_t batch_a, int64_t batch_b, int64_t M, int64_t K,
                               int64_t N, int32_t trans_a, int32_t trans_b, float alpha,
                               float beta);

/* Scaled fp8 GEMM (torch._scaled_mm semantics, CPU emulation):
 * c (M, N) <- (decode(a) @ decode(b)) * (1/scale_a) * (1/scale_b) + bias
 *   a: (M, K) e4m3/e5m2, or (K, M) stored when trans_a; b: (K, N), or (N, K) when trans_b.
 *   scale_a, scale_b point at one float each. Decoding fp8 to bf16 is exact, the
 *   product runs as oneDNN bf16 matmul with f32 accumulation and the scale in the
 *   epilogue. c F32 or BF16; bias NULL or (N) F32/BF16. With oneDNN >= 3.2 the
 *   product may run on oneDNN's fp8 matmul instead (same epilogue), chosen per
 *   problem only when it is a JIT kernel that beat the decode path in a
 *   measurement on first use (see fp8_cpu_scaled_mm_path). */
FP8_API int32_t fp8_cpu_scaled_mm(void *c, int32_t c_dtype, const void *a, int32_t a_dtype,
                                  const void *b, int32_t b_dtype, const float *scale_a,
                                  const float *scale_b, const void *bias, int32_t bias_dtype,
                                  int64_t M, int64_t K, int64_t N, int32_t trans_a,
                                  int32_t trans_b);
/* *native <- 1 when fp8_cpu_scaled_mm runs this problem on oneDNN's native fp8
 * matmul, 0 when it decodes to bf16. Decided on the first call for a problem
 * (creating the native primitive, rejecting reference implementations, timing
 * both paths) and recorded in fp8_cpu_onednn_report. bias_dtype -1: no bias.
 * FP8_CPU_FP8_MATMUL=decode|native in the environment overrides the choice. */
FP8_API int32_t fp8_cpu_scaled_mm_path(int32_t *native, int32_t c_dtype, int32_t a_dtype,
                                       int32_t b_dtype, int32_t bias_dtype, int64_t M, int64_t K,
                                       int64_t N, int32_t trans_a, int32_t trans_b);

/* ---- elementwise, reductions, normalisation (oneDNN where it has them) -- */

enum {
    FP8_ELTWISE_RELU = 0,
    FP8_ELTWISE_GELU_TANH = 1,
    FP8_ELTWISE_GELU_ERF = 2,
    FP8_ELTWISE_SILU = 3,   /* x * sigmoid(x) */
    FP8_ELTWISE_TANH = 4,
    FP8_ELTWISE_EXP = 5,
    FP8_ELTWISE_LOG = 6,
    FP8_ELTWISE_SQRT = 7,
    FP8_ELTWISE_POW = 8,    /* alpha * x^beta */
    FP8_ELTWISE_LINEAR = 9, /* alpha * x + beta */
    FP8_ELTWISE_ABS = 10,
    FP8_ELTWISE_SIGMOID = 11,
};

/* dst (n) <- f(src (n)), dtype F32 or BF16 (same for both). alpha/beta as in
 * the enum comments (ignored otherwise). dst may equal src. */
FP8_API int32_t fp8_cpu_eltwise(void *dst, const void *src, int32_t dtype, int64_t n,
                                int32_t alg, float alpha, float beta);

/* dsrc (n) <- ddst * f'(src) (n). `src` is the forward input. */
FP8_API int32_t fp8_cpu_eltwise_backward(void *dsrc, const void *ddst, const void *src,
                                         int32_t dtype, int64_t n, int32_t alg, float alpha,
                                         float beta);

enum {
    FP8_BINARY_ADD = 0,
    FP8_BINARY_SUB = 1,
    FP8_BINARY_MUL = 2,
    FP8_BINARY_DIV = 3,
    FP8_BINARY_MAX = 4,
    FP8_BINARY_MIN = 5,
};

/* dst <- a (op) b with numpy broadcasting. a_dims, b_dims, dst_dims have ndim
 * (1..8) entries each (caller pads with leading 1s); each a/b dim equals the
 * dst dim or 1. dtype F32 or BF16 for all three. */
FP8_API int32_t fp8_cpu_binary(void *dst, const int64_t *dst_dims, const void *a,
                               const int64_t *a_dims, const void *b, const int64_t *b_dims,
                               int32_t dtype, int32_t ndim, int32_t alg);

enum {
    FP8_REDUCE_SUM = 0,
    FP8_REDUCE_MEAN = 1,
    FP8_REDUCE_MAX = 2,
    FP8_REDUCE_MIN = 3,
};

/* dst <- reduce(src) over every dim where dst_dims[d] == 1 and src_dims[d] > 1.
 * ndim 1..8 entries each; dtype F32 or BF16 (accumulates in f32). */
FP8_API int32_t fp8_cpu_reduce(void *dst, const int64_t *dst_dims, const void *src,
                               const int64_t *src_dims, int32_t dtype, int32_t ndim,
                               int32_t alg);

/* Softmax along the last axis of src viewed as (rows, cols); log != 0 gives
 * log-softmax. dtype F32 or BF16. */
FP8_API int32_t fp8_cpu_softmax(void *dst, const void *src, int32_t dtype, int64_t rows,
                                int64_t cols, int32_t log);
/* dsrc (rows, cols) from ddst and the forward output dst. */
FP8_API int32_t fp8_cpu_softmax_backward(void *dsrc, const void *ddst, const void *dst,
                                         int32_t dtype, int64_t rows, int64_t cols,
                                         int32_t log);

/* Layer norm over the last axis: src (rows, cols) -> dst (rows, cols);
 * gamma, beta: (cols) of `dtype` or NULL; mean, rstd: (rows) f32 out, kept
 * for backward. dtype F32 or BF16. */
FP8_API int32_t fp8_cpu_layer_norm(void *dst, float *mean, float *rstd, const void *src,
                                   const void *gamma, const void *beta, int32_t dtype,
                                   int64_t rows, int64_t cols, float eps);
/* dsrc (rows, cols); dgamma, dbeta (cols) of dtype or NULL (overwritten). */
FP8_API int32_t fp8_cpu_layer_norm_backward(void *dsrc, void *dgamma, void *dbeta,
                                            const void *ddst, const void *src,
                                            const float *mean, const float *rstd,
                                            const void *gamma, int32_t dtype, int64_t rows,
                                            int64_t cols);

/* RMS norm over the last axis: dst = src * rstd * gamma, rstd = 1/sqrt(mean(src^2)+eps)
 * (f32 out, rows). gamma (cols) or NULL. */
FP8_API int32_t fp8_cpu_rms_norm(void *dst, float *rstd, const void *src, const void *gamma,
                                 int32_t dtype, int64_t rows, int64_t cols, float eps);
FP8_API int32_t fp8_cpu_rms_norm_backward(void *dsrc, void *dgamma, const void *ddst,
                                          const void *src, const float *rstd,
                                          const void *gamma, int32_t dtype, int64_t rows,
                                          int64_t cols);

/* ---- data movement ----------------------------------------------------- */

/* Strided copy of an ndim (1..8) region of `dims`: element size elem_size
 * (1, 2 or 4 bytes); strides in elements, may be any non-negative values.
 * Covers permute/transpose, slice and cat. */
FP8_API int32_t fp8_cpu_copy_strided(void *dst, const int64_t *dst_strides, const void *src,
                                     const int64_t *src_strides, const int64_t *dims,
                                     int32_t ndim, int32_t elem_size);

/* dst (n) <- value, dtype F32, BF16 or I32 (value converted). */
FP8_API int32_t fp8_cpu_fill(void *dst, int32_t dtype, int64_t n, double value);

/* dst (n) <- mask[i % mask_n] ? value : src[i]; mask u8 (mask_n), n % mask_n == 0. */
FP8_API int32_t fp8_cpu_masked_fill(void *dst, const void *src, const uint8_t *mask,
                                    int32_t dtype, int64_t n, int64_t mask_n, float value);

/* Embedding: dst (n_idx, dim) <- weight[idx[i]] ; weight (num, dim).
 * An index outside [0, num) is an error naming it. */
FP8_API int32_t fp8_cpu_embedding(void *dst, const void *weight, const int32_t *idx,
                                  int32_t dtype, int64_t n_idx, int64_t num, int64_t dim);
/* dweight (num, dim) += scatter of ddst (n_idx, dim) by idx. */
FP8_API int32_t fp8_cpu_embedding_backward(void *dweight, const void *ddst, const int32_t *idx,
                                           int32_t dtype, int64_t n_idx, int64_t num,
                                           int64_t dim);

/* Cross entropy with mean reduction over rows whose target != ignore_index:
 * logits (rows, cols), targets int32 (rows) in [0, cols) or ignore_index.
 * *loss <- mean NLL (f32); logp (rows, cols) <- log_softmax(logits), same dtype
 * as logits, kept for backward. */
FP8_API int32_t fp8_cpu_cross_entropy(float *loss, void *logp, const void *logits,
                                      const int32_t *targets, int32_t dtype, int64_t rows,
                                      int64_t cols, int32_t ignore_index);
/* dlogits (rows, cols) <- dloss * (softmax - onehot) / count. */
FP8_API int32_t fp8_cpu_cross_entropy_backward(void *dlogits, const void *logp,
                                               const int32_t *targets, float dloss,
                                               int32_t dtype, int64_t rows, int64_t cols,
                                               int32_t ignore_index);

/* ---- optimizers (fused, per parameter) -------------------------------- */

/* SGD (torch.optim.SGD semantics): g = grad + wd*param; with momentum,
 * buf = momentum*buf + (1-dampening)*g (buf = g on the first step, first_step != 0),
 * g = nesterov ? g + momentum*buf : buf; param -= lr*g.
 * param/grad of dtype (F32/BF16); buf f32 (n) or NULL when momentum == 0. */
FP8_API int32_t fp8_cpu_sgd_step(void *param, const void *grad, float *buf, int32_t dtype,
                                 int64_t n, float lr, float momentum, float dampening,
                                 float weight_decay, int32_t nesterov, int32_t first_step);

/* AdamW (torch.optim.AdamW semantics, step >= 1): param *= 1 - lr*wd;
 * m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * param -= lr/(1-b1^step) * m / (sqrt(v/(1-b2^step)) + eps). m, v f32 (n). */
FP8_API int32_t fp8_cpu_adamw_step(void *param, const void *grad, float *exp_avg,
                                   float *exp_avg_sq, int32_t dtype, int64_t n, float lr,
                                   float beta1, float beta2, float eps, float weight_decay,
                                   int64_t step);

/* ---- what oneDNN runs (libfp8/src/cpu/onednn_check.cpp) ---------------- */

/* The oneDNN release loaded at run time. */
FP8_API int32_t fp8_cpu_onednn_version(int32_t *major, int32_t *minor, int32_t *patch);
/* *out <- how many distinct primitives oneDNN has run with a reference
 * ("ref...") implementation in this process (each is also logged once to
 * stderr). 0 on a healthy training step. */
FP8_API int32_t fp8_cpu_onednn_ref_count(int64_t *out);
/* JSON: {"version":"3.7.2","api":3,"ref":[{"op","impl","problem"}...],
 *        "fp8_matmul":[{"problem","path":"native"|"decode_bf16","native_impl","reason"}...]}.
 * Owned by the library; valid until the next call on this thread. */
FP8_API const char *fp8_cpu_onednn_report(void);

/* ==== distributed (libfp8_dist, libfp8/src/dist) ========================
 * A separate shared library, libfp8_dist, so that libfp8 never depends on MPI.
 * Its errors are read with fp8_dist_last_error() (same rules as fp8_last_error).
 * Host buffers go through MPI; device (CUDA) buffers through NCCL, when the
 * NCCL plugin (libfp8_dist_nccl) was built and the group was initialised with
 * FP8_DIST_BACKEND_NCCL. Every rank must call the same collectives in the same
 * order. Each collective waits at most the timeout, then fails naming the op;
 * after a timeout the process group is unusable (a peer is gone or stuck). On
 * the first use of each (collective, tag) pair the ranks compare op, dtype,
 * count and shape, so a mismatch is a clear error on every rank, not a hang.
 * Buffers are borrowed for the call only (host data is staged internally).
 * Byte counters record, per collective kind, the payload bytes this rank put
 * in (all-reduce: count; all-gather: its block; reduce-scatter: its full input;
 * broadcast: the buffer, on the root only). */
enum { FP8_DIST_BACKEND_MPI = 0, FP8_DIST_BACKEND_NCCL = 1 };
enum { FP8_DIST_SUM = 0, FP8_DIST_MAX = 1, FP8_DIST_AVG = 2 }; /* AVG = SUM / size */
enum { FP8_DIST_HOST = 0, FP8_DIST_DEVICE = 1 };               /* where buffers live */
enum {
    FP8_DIST_ALL_REDUCE = 0,
    FP8_DIST_ALL_GATHER = 1,
    FP8_DIST_REDUCE_SCATTER = 2,
    FP8_DIST_BROADCAST = 3,
    FP8_DIST_BARRIER = 4,
};
enum { FP8_DIST_CHECK_OFF = 0, FP8_DIST_CHECK_FIRST_USE = 1, FP8_DIST_CHECK_ALWAYS = 2 };

/* Thread-local message of the last failed fp8_dist_* call ("" if none). */
FP8_API const char *fp8_dist_last_error(void);
/* Joins the job started by mpirun (MPI_Init; a lone process is a world of 1).
 * NCCL: rank 0 makes an ncclUniqueId, MPI broadcasts it, each rank binds GPU
 * local_rank % device_count. timeout_ms > 0 bounds every later collective. */
FP8_API int32_t fp8_dist_init(int32_t backend, int64_t timeout_ms);
/* Leaves the group (MPI_Finalize). MPI allows one init per process. */
FP8_API int32_t fp8_dist_finalize(void);
FP8_API int32_t fp8_dist_rank(int32_t *out);
FP8_API int32_t fp8_dist_size(int32_t *out);
/* Rank among the processes on this node (picks the GPU). */
FP8_API int32_t fp8_dist_local_rank(int32_t *out);
/* 1 when libfp8_dist_nccl.so is next to this library (the NCCL backend can load). */
FP8_API int32_t fp8_dist_has_nccl(int32_t *out);
FP8_API int32_t fp8_dist_set_timeout(int64_t timeout_ms);
/* FP8_DIST_CHECK_*: compare signatures across ranks never, on first use (default), or always. */
FP8_API int32_t fp8_dist_set_shape_check(int32_t mode);
/* cudaStream_t the NCCL collectives are ordered on (NULL: legacy default stream). */
FP8_API int32_t fp8_dist_set_stream(void *cuda_stream);

/* In every collective: `where` is FP8_DIST_HOST or FP8_DIST_DEVICE; `tag` names
 * the call site for the first-use check (equal on all ranks, any value);
 * shape (ndim 0..8 entries, may be NULL when ndim is 0) is the logical shape
 * the check compares and reports; its product must equal the element count. */

/* buf (count) <- op over ranks of buf (count); dtype F32 or BF16. */
FP8_API int32_t fp8_dist_all_reduce(void *buf, int32_t dtype, int64_t count, int32_t op,
                                    int32_t where, int64_t tag, const int64_t *shape,
                                    int32_t ndim);
/* recv (size * count) <- concat over ranks of send (count), rank order; any
 * dtype, copied as raw bytes (fp8 travels as 1 byte an element). */
FP8_API int32_t fp8_dist_all_gather(void *recv, const void *send, int32_t dtype, int64_t count,
                                    int32_t where, int64_t tag, const int64_t *shape,
                                    int32_t ndim);
/* recv (recv_count) <- block `rank` of op over ranks of send (size * recv_count);
 * dtype F32 or BF16. `shape` describes send. */
FP8_API int32_t fp8_dist_reduce_scatter(void *recv, const void *send, int32_t dtype,
                                        int64_t recv_count, int32_t op, int32_t where,
                                        int64_t tag, const int64_t *shape, int32_t ndim);
/* buf (count) <- root's buf (count); any dtype, raw bytes. */
FP8_API int32_t fp8_dist_broadcast(void *buf, int32_t dtype, int64_t count, int32_t root,
                                   int32_t where, int64_t tag, const int64_t *shape,
                                   int32_t ndim);
FP8_API int32_t fp8_dist_barrier(void);
/* Payload bytes and calls of one FP8_DIST_* kind since init or the last reset. */
FP8_API int32_t fp8_dist_bytes_sent(int32_t kind, int64_t *bytes, int64_t *calls);
FP8_API int32_t fp8_dist_reset_counters(void);
/* ==== end distributed ==================================================== */

/* ==== CUDA backend (libfp8_cuda, libfp8/src/cuda) ========================
 * A separate shared library, built where nvcc and cuBLASLt are found and
 * loaded by TypeScript only when a "cuda" device is asked for; libfp8 never
 * depends on CUDA. Its errors are read with fp8_cuda_last_error() (same rules
 * as fp8_last_error); a CUDA or cuBLAS failure names the call and the error,
 * e.g. "fp8_cuda_malloc: cudaMallocAsync: cudaErrorMemoryAllocation (out of memory)".
 * Built for Hopper (sm_90a, sm_90, compute_90 PTX): a context on a device
 * below compute capability 9.0 is refused.
 *
 * d_* pointers are device memory of the context's device (fp8_cuda_malloc or
 * any cudaMalloc); other pointers are host memory borrowed for the call.
 * Kernels and GEMMs are queued on the context's stream and return without
 * waiting for the GPU: amaxes and scales stay on the device. Only memcpy
 * h2d/d2h, synchronize, timer_stop and ctx_destroy wait; an error inside
 * queued GPU work surfaces at the next call that waits. A context is used by
 * one thread at a time. Device tensors are dense, row-major; fp8 is 1 byte. */
typedef struct fp8_cuda_ctx *fp8_cuda_ctx_t;
typedef struct fp8_cuda_graph *fp8_cuda_graph_t;

enum { /* fp8_cuda_probe states */
    FP8_CUDA_READY = 0,          /* driver and >= 1 GPU */
    FP8_CUDA_NO_DRIVER = 1,      /* no NVIDIA driver (libcuda.so.1) */
    FP8_CUDA_DRIVER_TOO_OLD = 2, /* driver older than the CUDA runtime built in */
    FP8_CUDA_NO_DEVICE = 3,      /* driver, but no visible GPU */
    FP8_CUDA_ERROR = 4,          /* any other CUDA error (see fp8_cuda_last_error) */
};
enum { FP8_CUDA_CAST_REFERENCE = 0, FP8_CUDA_CAST_HARDWARE = 1 }; /* fp8 encoder */

/* Thread-local message of the last failed fp8_cuda_* call ("" if none). */
FP8_API const char *fp8_cuda_last_error(void);
/* Never fails for lack of CUDA: *state <- FP8_CUDA_*, *device_count <- GPUs
 * (0 unless READY), versions as 1000*major + 10*minor (0: none). When state
 * != READY, fp8_cuda_last_error() says why. Out-params may be NULL. */
FP8_API int32_t fp8_cuda_probe(int32_t *state, int32_t *device_count, int32_t *driver_version,
                               int32_t *runtime_version);
/* Compute capability, SM count, memory bytes and name (name_cap bytes with the
 * NUL; name may be NULL) of `device`. No driver / no GPU: FP8_ERR_UNSUPPORTED. */
FP8_API int32_t fp8_cuda_device_info(int32_t device, int32_t *cc_major, int32_t *cc_minor,
                                     int32_t *sm_count, int64_t *total_mem, char *name,
                                     int64_t name_cap);

/* Context on `device`: non-blocking stream, cuBLASLt handle, 32 MiB GEMM
 * workspace, reduction scratch, and a cache of matmul descriptors and chosen
 * algorithms keyed by (shape, dtypes, layout, epilogue, fast accum, alignment). */
FP8_API int32_t fp8_cuda_ctx_create(int32_t device, fp8_cuda_ctx_t *out);
/* Waits for the stream, then frees the context and every buffer still
 * allocated through it. NULL is a no-op. */
FP8_API int32_t fp8_cuda_ctx_destroy(fp8_cuda_ctx_t ctx);
/* The context's cudaStream_t (e.g. for fp8_dist_set_stream). */
FP8_API int32_t fp8_cuda_ctx_stream(fp8_cuda_ctx_t ctx, void **out);
/* Entries in the context's GEMM plan cache. */
FP8_API int32_t fp8_cuda_gemm_plans(fp8_cuda_ctx_t ctx, int64_t *out);
/* Encoder of every fp8 cast on ctx: REFERENCE (fp8_ref.h integer code) or
 * HARDWARE (cvt.rn.satfinite + NaN fix-up, sm_89+). Both are meant to be
 * bit-identical to the CPU; bench/gpu/check.sh compares them on every f32 and
 * bf16 bit pattern (fp8_cuda_encoder_check). A new context takes
 * $FP8_CUDA_CAST_KERNEL ("reference" / "hardware") when set, else HARDWARE in
 * libfp8_cuda and REFERENCE in libfp8_cuda_emu (which has no hardware encoder). */
FP8_API int32_t fp8_cuda_set_cast_kernel(fp8_cuda_ctx_t ctx, int32_t kernel);
FP8_API int32_t fp8_cuda_get_cast_kernel(fp8_cuda_ctx_t ctx, int32_t *kernel);
/* The two encoders side by side on the device: bit patterns k * step of
 * src_dtype (F32: 2^32 patterns, BF16: 2^16; step 1 = all of them), each
 * multiplied by `scale` as the casts do, encoded to fp8_dtype by both.
 * result[0] <- patterns whose bytes differ, result[1] <- the smallest such
 * pattern (0xFFFFFFFF if none). Waits for the result. */
FP8_API int32_t fp8_cuda_encoder_check(fp8_cuda_ctx_t ctx, int32_t fp8_dtype, int32_t src_dtype,
                                       float scale, int64_t step, uint32_t *result);
/* Blocks until all work queued on ctx is done; reports its errors. */
FP8_API int32_t fp8_cuda_synchronize(fp8_cuda_ctx_t ctx);
/* Out-of-range integer inputs already on the device (issue 15): the embedding
 * and cross-entropy kernels cannot return a status without a host sync, so
 * the first bad index / target they meet is recorded in the context (a flag
 * in pinned, mapped host memory; the op's result is still safe: see each
 * function). This returns it and clears it: *op <- FP8_CUDA_INDEX_* (0 when
 * none), *index <- the value, *limit <- the row / class count (valid range
 * [0, limit)). Costs no device work; call it after fp8_cuda_synchronize or a
 * d2h copy (work still queued may record one later). */
#define FP8_CUDA_INDEX_EMBEDDING 1
#define FP8_CUDA_INDEX_EMBEDDING_BACKWARD 2
#define FP8_CUDA_INDEX_CROSS_ENTROPY 3
#define FP8_CUDA_INDEX_CROSS_ENTROPY_BACKWARD 4
FP8_API int32_t fp8_cuda_take_index_error(fp8_cuda_ctx_t ctx, int32_t *op, int64_t *index,
                                          int64_t *limit);

/* Stream-ordered device memory (cudaMallocAsync; 256-byte aligned, a valid
 * unique pointer even for 0 bytes). Free with fp8_cuda_free on the same ctx. */
FP8_API int32_t fp8_cuda_malloc(fp8_cuda_ctx_t ctx, int64_t nbytes, void **d_out);
FP8_API int32_t fp8_cuda_free(fp8_cuda_ctx_t ctx, void *d_ptr);
FP8_API int32_t fp8_cuda_memory_stats(fp8_cuda_ctx_t ctx, int64_t *live_bytes,
                                      int64_t *live_allocs);
/* h2d and d2h return when the copy is done (host memory is borrowed); d2d
 * and memset are queued. */
FP8_API int32_t fp8_cuda_memcpy_h2d(fp8_cuda_ctx_t ctx, void *d_dst, const void *src,
                                    int64_t nbytes);
/* Host -> device without waiting for the stream: src is copied into a pinned
 * staging buffer (a ring of 4 per context), which the device copy reads later
 * in stream order; src may be reused as soon as this returns. Copies over
 * 64 MiB go directly and wait. Not allowed while capturing. */
FP8_API int32_t fp8_cuda_memcpy_h2d_async(fp8_cuda_ctx_t ctx, void *d_dst, const void *src,
                                          int64_t nbytes);
FP8_API int32_t fp8_cuda_memcpy_d2h(fp8_cuda_ctx_t ctx, void *dst, const void *d_src,
                                    int64_t nbytes);
FP8_API int32_t fp8_cuda_memcpy_d2d(fp8_cuda_ctx_t ctx, void *d_dst, const void *d_src,
                                    int64_t nbytes);
FP8_API int32_t fp8_cuda_memset(fp8_cuda_ctx_t ctx, void *d_dst, int32_t byte, int64_t nbytes);

/* GPU time between timer_start and timer_stop (CUDA events on the stream);
 * timer_stop waits for the stop event. */
FP8_API int32_t fp8_cuda_timer_start(fp8_cuda_ctx_t ctx);
FP8_API int32_t fp8_cuda_timer_stop(fp8_cuda_ctx_t ctx, float *ms);
/* Stream capture: calls between graph_begin and graph_end are recorded, not
 * run; graph_launch replays them (same pointers, same shapes). No malloc,
 * free, h2d/d2h or synchronize while capturing. */
FP8_API int32_t fp8_cuda_graph_begin(fp8_cuda_ctx_t ctx);
FP8_API int32_t fp8_cuda_graph_end(fp8_cuda_ctx_t ctx, fp8_cuda_graph_t *out);
FP8_API int32_t fp8_cuda_graph_launch(fp8_cuda_ctx_t ctx, fp8_cuda_graph_t graph);
FP8_API int32_t fp8_cuda_graph_destroy(fp8_cuda_graph_t graph);

/* -- fp8 kernels (ours; numerics exactly those of the fp8_cpu_* twins) -- */
/* d_dst (n) <- d_src (n) between F32, BF16, E4M3FN, E5M2 (as fp8_cpu_convert). */
FP8_API int32_t fp8_cuda_convert(fp8_cuda_ctx_t ctx, void *d_dst, int32_t dst_dtype,
                                 const void *d_src, int32_t src_dtype, int64_t n);
/* d_dst_fp8 (n) <- sat_rne(f32(d_src) * *d_scale); src F32/BF16. */
FP8_API int32_t fp8_cuda_quantize(fp8_cuda_ctx_t ctx, void *d_dst_fp8, int32_t fp8_dtype,
                                  const void *d_src, int32_t src_dtype, int64_t n,
                                  const float *d_scale);
/* d_dst (n) F32/BF16 <- decode(d_src_fp8) / *d_scale. */
FP8_API int32_t fp8_cuda_dequantize(fp8_cuda_ctx_t ctx, void *d_dst, int32_t dst_dtype,
                                    const void *d_src_fp8, int32_t fp8_dtype, int64_t n,
                                    const float *d_scale);
/* One pass over d_src (rows, cols) F32/BF16: d_dst (rows, cols) and
 * d_dst_t (cols, rows) <- the same quantized values, row-major and transposed
 * (the layouts the three Float8Linear GEMMs need). Either output may be NULL. */
FP8_API int32_t fp8_cuda_quantize_transpose(fp8_cuda_ctx_t ctx, void *d_dst, void *d_dst_t,
                                            int32_t fp8_dtype, const void *d_src,
                                            int32_t src_dtype, int64_t rows, int64_t cols,
                                            const float *d_scale);
/* *d_amax <- max|d_src (n)| (F32/BF16; NaN propagates; 0 for n == 0). */
FP8_API int32_t fp8_cuda_amax(fp8_cuda_ctx_t ctx, float *d_amax, const void *d_src,
                              int32_t src_dtype, int64_t n);
/* One launch: *d_amax <- max|d_src| (d_amax may be NULL), *d_scale <- scale of it
 * (as fp8_cpu_amax_to_scale). */
FP8_API int32_t fp8_cuda_amax_to_scale(fp8_cuda_ctx_t ctx, float *d_amax, float *d_scale,
                                       const void *d_src, int32_t src_dtype, int64_t n,
                                       int32_t fp8_dtype, int32_t clamp_to_f16);
/* *d_scale <- f32(fp8_max / max(f64(*d_amax), 1e-12)) [clamped to 65504]. */
FP8_API int32_t fp8_cuda_scale_from_amax(fp8_cuda_ctx_t ctx, float *d_scale,
                                         const float *d_amax, int32_t fp8_dtype,
                                         int32_t clamp_to_f16);
/* d_scale[i] (n) <- 2^floor(log2(d_scale[i])) for finite positive normals (exact;
 * others unchanged): roundScalesToPowerOf2 for tensorwise scales on the device. */
FP8_API int32_t fp8_cuda_round_scales_pow2(fp8_cuda_ctx_t ctx, float *d_scale, int64_t n);
/* Delayed scaling for `count` tensors in one launch (as fp8_cpu_sync_amax_history).
 * d_amax, d_history, d_scale: device arrays of `count` device pointers;
 * d_fp8_dtype, d_clamp_to_f16: device int32 arrays (count). Upload the tables
 * once; dtypes are not re-validated on the device (invalid ones act as E4M3FN). */
FP8_API int32_t fp8_cuda_sync_amax_history(fp8_cuda_ctx_t ctx, float *const *d_amax,
                                           float *const *d_history, float *const *d_scale,
                                           const int32_t *d_fp8_dtype,
                                           const int32_t *d_clamp_to_f16, int64_t count,
                                           int64_t history_len);

/* -- elementwise (the few a Linear's forward and backward need) -- */
/* d_dst (n) <- value; dtype F32, BF16 or I32. */
FP8_API int32_t fp8_cuda_fill(fp8_cuda_ctx_t ctx, void *d_dst, int32_t dtype, int64_t n,
                              double value);
/* d_dst (n) <- mean + std * N(0,1), F32/BF16; deterministic in (seed, index). */
FP8_API int32_t fp8_cuda_randn(fp8_cuda_ctx_t ctx, void *d_dst, int32_t dtype, int64_t n,
                               int64_t seed, float mean, float std);
/* d_y (rows, cols) += d_bias (cols), in f32; y and bias F32/BF16. */
FP8_API int32_t fp8_cuda_bias_add(fp8_cuda_ctx_t ctx, void *d_y, int32_t y_dtype,
                                  const void *d_bias, int32_t bias_dtype, int64_t rows,
                                  int64_t cols);
/* d_dbias (cols) <- sum over rows of d_dy (rows, cols), f32 accumulation. */
FP8_API int32_t fp8_cuda_bias_grad(fp8_cuda_ctx_t ctx, void *d_dbias, int32_t dbias_dtype,
                                   const void *d_dy, int32_t dy_dtype, int64_t rows,
                                   int64_t cols);

/* -- GEMMs (cuBLASLt) -- */
/* Scaled fp8 GEMM, torch._scaled_mm semantics with our scales (fp8 = x*scale):
 * d_c (M,N) <- (d_a (M,K) @ d_b (N,K)^T) * (1 / *d_scale_a) * (1 / *d_scale_b) [+ d_bias (N)]
 * Both operands K-contiguous (cuBLASLt "TN", the only fp8 layout on Hopper).
 * a, b E4M3FN/E5M2, not both E5M2; c F32/BF16; bias NULL or (N) BF16 (fused
 * epilogue) or F32 (added in f32 before c's one rounding, through an f32
 * temporary when c is BF16). K and N multiples of 16, pointers
 * 16-byte aligned. The inverse scales are computed on the device. */
FP8_API int32_t fp8_cuda_scaled_mm(fp8_cuda_ctx_t ctx, void *d_c, int32_t c_dtype,
                                   const void *d_a, int32_t a_dtype, const void *d_b,
                                   int32_t b_dtype, const float *d_scale_a,
                                   const float *d_scale_b, const void *d_bias,
                                   int32_t bias_dtype, int64_t M, int64_t K, int64_t N,
                                   int32_t use_fast_accum);
/* d_c (batch, M, N) <- alpha * op(d_a) @ op(d_b) [+ d_bias (N)] + beta * d_c,
 * shapes, batching, transposes and dtypes exactly as fp8_cpu_matmul (a, b F32
 * or BF16, f32 accumulation). */
FP8_API int32_t fp8_cuda_matmul(fp8_cuda_ctx_t ctx, void *d_c, int32_t c_dtype, const void *d_a,
                                const void *d_b, int32_t ab_dtype, const void *d_bias,
                                int32_t bias_dtype, int64_t batch_a, int64_t batch_b, int64_t M,
                                int64_t K, int64_t N, int32_t trans_a, int32_t trans_b,
                                float alpha, float beta);
/* -- axiswise (row-wise) scaling: the twins of fp8_cpu_quantize_rowwise and
 *    fp8_cpu_scaled_mm_rowwise (libfp8/src/cuda/cast_kernels.cu, gemm.cu) -- */
/* d_src (rows, cols) F32/BF16 -> d_dst_fp8 (rows, cols) and d_scale (rows) f32,
 * one scale per row: scale[r] = f32(fp8_max / max(f64(amax_r), 1e-12)), rounded
 * down to a power of two when round_pow2 != 0; dst = sat_rne(f32(x) * scale[r]).
 * Bytes and scales bit-identical to the CPU; one launch, scales stay on the device. */
FP8_API int32_t fp8_cuda_quantize_rowwise(fp8_cuda_ctx_t ctx, void *d_dst_fp8, float *d_scale,
                                          int32_t fp8_dtype, const void *d_src,
                                          int32_t src_dtype, int64_t rows, int64_t cols,
                                          int32_t round_pow2);
/* Row-scaled fp8 GEMM (fp8_cpu_scaled_mm_rowwise with trans_a = 0, trans_b = 1):
 * d_c (M,N) <- (d_a (M,K) @ d_b (N,K)^T) * (1 / d_scale_a[i]) * (1 / d_scale_b[j]) [+ d_bias (N)]
 * d_scale_a (M), d_scale_b (N) f32 on the device; operands, dtypes and
 * alignment as fp8_cuda_scaled_mm; bias NULL or (N) F32/BF16. Temporaries
 * come from the stream-ordered pool and are released on the stream. */
FP8_API int32_t fp8_cuda_scaled_mm_rowwise(fp8_cuda_ctx_t ctx, void *d_c, int32_t c_dtype,
                                           const void *d_a, int32_t a_dtype, const void *d_b,
                                           int32_t b_dtype, const float *d_scale_a,
                                           const float *d_scale_b, const void *d_bias,
                                           int32_t bias_dtype, int64_t M, int64_t K, int64_t N,
                                           int32_t use_fast_accum);
enum { /* how fp8_cuda_scaled_mm_rowwise applies the row scales */
    FP8_CUDA_ROWWISE_AUTO = 0,      /* OUTER_VEC where cuBLASLt takes it, else EPILOGUE (default) */
    FP8_CUDA_ROWWISE_OUTER_VEC = 1, /* cuBLASLt's outer-vector scale mode; FP8_ERR_UNSUPPORTED if refused */
    FP8_CUDA_ROWWISE_EPILOGUE = 2,  /* unit-scale f32 GEMM, then our epilogue kernel */
};
/* Path of every row-scaled GEMM on ctx (bench/gpu/check.sh tests each). */
FP8_API int32_t fp8_cuda_set_rowwise_gemm(fp8_cuda_ctx_t ctx, int32_t path);
/* -- block scaling on the device: the twins of fp8_cpu_{quantize,dequantize}_{blockwise,mx}
 *    (libfp8/src/cuda/block_kernels.cu; rules in src/core/block_ref.h), same
 *    arguments after ctx, bytes and scales bit-identical to the CPU. -- */
/* d_src (rows, cols) F32/BF16 -> d_dst_fp8 (rows, cols) and d_inv_scale
 * (ceil(rows/br), ceil(cols/bc)) f32, as fp8_cpu_quantize_blockwise. */
FP8_API int32_t fp8_cuda_quantize_blockwise(fp8_cuda_ctx_t ctx, void *d_dst_fp8, float *d_inv_scale,
                                            int32_t fp8_dtype, const void *d_src, int32_t src_dtype,
                                            int64_t rows, int64_t cols, int64_t block_rows,
                                            int64_t block_cols);
/* d_dst (F32/BF16) <- round_to_dst(f32(decode(d_src_fp8)) * d_inv_scale[block]). */
FP8_API int32_t fp8_cuda_dequantize_blockwise(fp8_cuda_ctx_t ctx, void *d_dst, int32_t dst_dtype,
                                              const void *d_src_fp8, int32_t fp8_dtype,
                                              const float *d_inv_scale, int64_t rows, int64_t cols,
                                              int64_t block_rows, int64_t block_cols);
/* MX blocks of `block` elements along cols, e8m0 scales (rows, ceil(cols/block)),
 * mode FP8_MX_FLOOR or FP8_MX_RCEIL, as fp8_cpu_quantize_mx. */
FP8_API int32_t fp8_cuda_quantize_mx(fp8_cuda_ctx_t ctx, void *d_dst_fp8, uint8_t *d_scale_e8m0,
                                     int32_t fp8_dtype, const void *d_src, int32_t src_dtype,
                                     int64_t rows, int64_t cols, int64_t block, int32_t mode);
/* d_dst (F32/BF16) <- round_to_dst(f32(decode(d_src_fp8)) * 2^(E-127)). */
FP8_API int32_t fp8_cuda_dequantize_mx(fp8_cuda_ctx_t ctx, void *d_dst, int32_t dst_dtype,
                                       const void *d_src_fp8, int32_t fp8_dtype,
                                       const uint8_t *d_scale_e8m0, int64_t rows, int64_t cols,
                                       int64_t block);
/* Block-scaled fp8 GEMMs (libfp8/src/cuda/gemm.cu), c (M,N) <- a (M,K) @ b (N,K)^T with
 * each product of a K block multiplied by the blocks' dequantize multipliers, operands,
 * dtypes, bias and alignment as fp8_cuda_scaled_mm. Two paths (fp8_cuda_set_block_gemm):
 * CUBLASLT: cuBLASLt's own scale modes (cuBLAS 12.9+): VEC128_32F (1x128) and
 *   BLK128x128_32F (128x128 weight) on sm_90; VEC32_UE8M0 (MXFP8) on sm_100 and later.
 *   Our row-major scales are reordered on the device into the layouts cuBLASLt reads
 *   (fp8_cuda_block_scales_layout).
 * DEQUANT: the CPU's method on the device: both operands decoded to f32 with their block
 *   scales (fp8_cuda_dequantize_blockwise / _mx, bit-identical to the CPU's decode), then
 *   the f32 GEMM (cuBLASLt), c rounded once.
 * AUTO (default) takes CUBLASLT where the device and cuBLASLt have the mode, else DEQUANT;
 * fp8_cuda_block_gemm_info says which path the last call took and why it fell back. */
enum {
    FP8_CUDA_BLOCK_GEMM_AUTO = 0,
    FP8_CUDA_BLOCK_GEMM_CUBLASLT = 1, /* FP8_ERR_UNSUPPORTED where the mode is missing */
    FP8_CUDA_BLOCK_GEMM_DEQUANT = 2,
};
FP8_API int32_t fp8_cuda_set_block_gemm(fp8_cuda_ctx_t ctx, int32_t path);
/* *path <- the path of the last block GEMM on ctx (0 before the first); reason (reason_cap
 * bytes, may be NULL) <- why it did not run on cuBLASLt's scale modes ("" when it did). */
FP8_API int32_t fp8_cuda_block_gemm_info(fp8_cuda_ctx_t ctx, int32_t *path, char *reason,
                                         int64_t reason_cap);
/* d_scale_a (M, ceil(K/128)) f32: 1x128 blocks of a (fp8_cuda_quantize_blockwise's inv_scale);
 * d_scale_b (ceil(N/b_block_rows), ceil(K/128)) f32, b_block_rows 1 (1x128) or 128 (128x128). */
FP8_API int32_t fp8_cuda_scaled_mm_blockwise(fp8_cuda_ctx_t ctx, void *d_c, int32_t c_dtype,
                                             const void *d_a, int32_t a_dtype, const void *d_b,
                                             int32_t b_dtype, const float *d_scale_a,
                                             const float *d_scale_b, int64_t b_block_rows,
                                             const void *d_bias, int32_t bias_dtype, int64_t M,
                                             int64_t K, int64_t N, int32_t use_fast_accum);
/* d_scale_a (M, ceil(K/32)), d_scale_b (N, ceil(K/32)) e8m0 bytes (fp8_cuda_quantize_mx, block 32). */
FP8_API int32_t fp8_cuda_scaled_mm_mx(fp8_cuda_ctx_t ctx, void *d_c, int32_t c_dtype, const void *d_a,
                                      int32_t a_dtype, const void *d_b, int32_t b_dtype,
                                      const uint8_t *d_scale_a, const uint8_t *d_scale_b,
                                      const void *d_bias, int32_t bias_dtype, int64_t M, int64_t K,
                                      int64_t N);
/* Our row-major block scales (rows, cols) (rows: the operand's rows or row blocks, cols: its
 * K blocks) -> the layout cuBLASLt reads for a scale mode:
 *   VEC128 (VEC128_32F): f32, K-block-major: dst[kb * rows + r];
 *   BLK128 (BLK128x128_32F): f32, row blocks of round_up(cols, 4): dst[r * round_up(cols, 4) + kb];
 *   MX (VEC32_UE8M0): e8m0 bytes in 128x4 tiles (rows padded to 128, cols to 4, padding 127 = 1.0):
 *     dst[((r / 128) * ceil(cols / 4) + kb / 4) * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4 + kb % 4].
 * *nbytes <- the size of dst. */
enum { FP8_CUDA_BLOCK_LAYOUT_VEC128 = 0, FP8_CUDA_BLOCK_LAYOUT_BLK128 = 1, FP8_CUDA_BLOCK_LAYOUT_MX = 2 };
FP8_API int32_t fp8_cuda_block_scales_layout_size(int32_t layout, int64_t rows, int64_t cols,
                                                  int64_t *nbytes);
FP8_API int32_t fp8_cuda_block_scales_layout(fp8_cuda_ctx_t ctx, void *d_dst, const void *d_src,
                                             int32_t layout, int64_t rows, int64_t cols);
/* [end block scaling on the device] */
/* -- Tensor ops on the device: the twins of the CPU ops above, same
 *    arguments after ctx, same semantics, F32/BF16 with f32 arithmetic.
 *    Host-side metadata (dims, strides) is read on the host; every data
 *    pointer is device memory. -- */
/* [tensor-kernels: libfp8/src/cuda/tensor_kernels.cu] */
/* d_dst <- d_a (op) d_b with numpy broadcasting (fp8_cpu_binary): dst_dims, a_dims,
 * b_dims are host arrays of ndim (1..8) entries, each a/b dim dst's or 1. */
FP8_API int32_t fp8_cuda_binary(fp8_cuda_ctx_t ctx, void *d_dst, const int64_t *dst_dims,
                                const void *d_a, const int64_t *a_dims, const void *d_b,
                                const int64_t *b_dims, int32_t dtype, int32_t ndim, int32_t alg);
/* d_dst (n) <- f(d_src (n)) (fp8_cpu_eltwise: oneDNN's formulas, alpha/beta for
 * POW and LINEAR only). d_dst may equal d_src. */
FP8_API int32_t fp8_cuda_eltwise(fp8_cuda_ctx_t ctx, void *d_dst, const void *d_src,
                                 int32_t dtype, int64_t n, int32_t alg, float alpha, float beta);
/* d_dsrc (n) <- d_ddst * f'(d_src) from the forward input d_src (fp8_cpu_eltwise_backward). */
FP8_API int32_t fp8_cuda_eltwise_backward(fp8_cuda_ctx_t ctx, void *d_dsrc, const void *d_ddst,
                                          const void *d_src, int32_t dtype, int64_t n,
                                          int32_t alg, float alpha, float beta);
/* d_dst <- reduce(d_src) over the dims where dst_dims[d] == 1 (fp8_cpu_reduce; host
 * dims, f32 accumulation; max/min give NaN when any element is NaN). */
FP8_API int32_t fp8_cuda_reduce(fp8_cuda_ctx_t ctx, void *d_dst, const int64_t *dst_dims,
                                const void *d_src, const int64_t *src_dims, int32_t dtype,
                                int32_t ndim, int32_t alg);
/* Strided copy of a (dims) region of elem_size-byte elements (fp8_cpu_copy_strided);
 * strides and dims are host arrays of ndim (1..8) entries, strides in elements. */
FP8_API int32_t fp8_cuda_copy_strided(fp8_cuda_ctx_t ctx, void *d_dst, const int64_t *dst_strides,
                                      const void *d_src, const int64_t *src_strides,
                                      const int64_t *dims, int32_t ndim, int32_t elem_size);
/* d_dst (n) <- d_mask[i % mask_n] ? value : d_src[i] (fp8_cpu_masked_fill); d_mask u8
 * (mask_n) on the device, n % mask_n == 0. d_dst may equal d_src. */
FP8_API int32_t fp8_cuda_masked_fill(fp8_cuda_ctx_t ctx, void *d_dst, const void *d_src,
                                     const uint8_t *d_mask, int32_t dtype, int64_t n,
                                     int64_t mask_n, float value);
/* d_dst (rows) int32 <- index of the max of each row of d_src (rows, cols), cols >= 1:
 * the first index on ties, the first NaN when a row has one (as Tensor.argmax). */
FP8_API int32_t fp8_cuda_argmax(fp8_cuda_ctx_t ctx, int32_t *d_dst, const void *d_src,
                                int32_t dtype, int64_t rows, int64_t cols);
/* [end tensor-kernels] */
/* [nn-kernels: libfp8/src/cuda/nn_kernels.cu, optim_kernels.cu] */
/* Row ops along the last axis of (rows, cols), one warp or block per row.
 * Integer inputs live on the device and are not validated: the caller checks
 * them on the host (an out-of-range value never reads or writes out of bounds;
 * each function says what it does instead). Sums across rows are deterministic. */
/* d_dst (rows, cols) <- softmax (log != 0: log-softmax) of d_src along each row. */
FP8_API int32_t fp8_cuda_softmax(fp8_cuda_ctx_t ctx, void *d_dst, const void *d_src, int32_t dtype,
                                 int64_t rows, int64_t cols, int32_t log);
/* d_dsrc (rows, cols) from d_ddst and the forward output d_dst. */
FP8_API int32_t fp8_cuda_softmax_backward(fp8_cuda_ctx_t ctx, void *d_dsrc, const void *d_ddst,
                                          const void *d_dst, int32_t dtype, int64_t rows,
                                          int64_t cols, int32_t log);
/* Layer norm: d_src (rows, cols) -> d_dst; d_gamma, d_beta (cols) or NULL;
 * d_mean, d_rstd (rows) f32 out, rstd = 1/sqrt(var + eps); cols >= 1. */
FP8_API int32_t fp8_cuda_layer_norm(fp8_cuda_ctx_t ctx, void *d_dst, float *d_mean, float *d_rstd,
                                    const void *d_src, const void *d_gamma, const void *d_beta,
                                    int32_t dtype, int64_t rows, int64_t cols, float eps);
/* d_dsrc (rows, cols); d_dgamma, d_dbeta (cols) or NULL, overwritten (zeros
 * when rows == 0); d_gamma NULL means ones. */
FP8_API int32_t fp8_cuda_layer_norm_backward(fp8_cuda_ctx_t ctx, void *d_dsrc, void *d_dgamma,
                                             void *d_dbeta, const void *d_ddst, const void *d_src,
                                             const float *d_mean, const float *d_rstd,
                                             const void *d_gamma, int32_t dtype, int64_t rows,
                                             int64_t cols);
/* RMS norm: d_dst (rows, cols) <- d_src * rstd [* d_gamma (cols)]; d_rstd (rows)
 * f32 out. Sums in double, as the CPU. */
FP8_API int32_t fp8_cuda_rms_norm(fp8_cuda_ctx_t ctx, void *d_dst, float *d_rstd, const void *d_src,
                                  const void *d_gamma, int32_t dtype, int64_t rows, int64_t cols,
                                  float eps);
/* d_dsrc (rows, cols); d_dgamma (cols) overwritten, or NULL (must be NULL when d_gamma is). */
FP8_API int32_t fp8_cuda_rms_norm_backward(fp8_cuda_ctx_t ctx, void *d_dsrc, void *d_dgamma,
                                           const void *d_ddst, const void *d_src,
                                           const float *d_rstd, const void *d_gamma, int32_t dtype,
                                           int64_t rows, int64_t cols);
/* Embedding: d_dst (n_idx, dim) <- d_weight (num, dim) rows picked by d_idx
 * (int32, n_idx), copied bit for bit; an index outside [0, num) gives a zero row
 * and is recorded for fp8_cuda_take_index_error. */
FP8_API int32_t fp8_cuda_embedding(fp8_cuda_ctx_t ctx, void *d_dst, const void *d_weight,
                                   const int32_t *d_idx, int32_t dtype, int64_t n_idx, int64_t num,
                                   int64_t dim);
/* d_dweight (num, dim) += d_ddst (n_idx, dim) scattered by d_idx; an index
 * outside [0, num) adds nothing (recorded for fp8_cuda_take_index_error; with
 * num == 0 the indices are not read). Deterministic, no atomics: a stable sort
 * (CUB) groups the positions of each row, summed in f32 in position order as
 * the CPU does. n_idx < 2^31; a temporary of ~16 bytes per index. */
FP8_API int32_t fp8_cuda_embedding_backward(fp8_cuda_ctx_t ctx, void *d_dweight, const void *d_ddst,
                                            const int32_t *d_idx, int32_t dtype, int64_t n_idx,
                                            int64_t num, int64_t dim);
/* Cross entropy, mean over rows whose target != ignore_index: d_logits (rows,
 * cols >= 1), d_targets int32 (rows); d_logp (rows, cols) <- log_softmax, kept
 * for backward; *d_loss (one f32 on the device) <- mean NLL, NaN when every
 * row is ignored. A target outside [0, cols) that is not ignore_index (the CPU
 * refuses it) makes the loss NaN and is recorded for fp8_cuda_take_index_error. */
FP8_API int32_t fp8_cuda_cross_entropy(fp8_cuda_ctx_t ctx, float *d_loss, void *d_logp,
                                       const void *d_logits, const int32_t *d_targets,
                                       int32_t dtype, int64_t rows, int64_t cols,
                                       int32_t ignore_index);
/* d_dlogits (rows, cols) <- *d_dloss * (softmax - onehot) / count, count = rows
 * not ignored (found on the device); 0 on ignored rows, NaN on rows whose
 * target is outside [0, cols) (recorded for fp8_cuda_take_index_error). d_dloss:
 * one f32 on the device. */
FP8_API int32_t fp8_cuda_cross_entropy_backward(fp8_cuda_ctx_t ctx, void *d_dlogits,
                                                const void *d_logp, const int32_t *d_targets,
                                                const float *d_dloss, int32_t dtype, int64_t rows,
                                                int64_t cols, int32_t ignore_index);
/* Optimizer steps, as fp8_cpu_sgd_step / fp8_cpu_adamw_step (same f32 operations
 * in the same order): d_param, d_grad (n) F32/BF16; state f32 (n) on the device. */
FP8_API int32_t fp8_cuda_sgd_step(fp8_cuda_ctx_t ctx, void *d_param, const void *d_grad, float *d_buf,
                                  int32_t dtype, int64_t n, float lr, float momentum,
                                  float dampening, float weight_decay, int32_t nesterov,
                                  int32_t first_step);
FP8_API int32_t fp8_cuda_adamw_step(fp8_cuda_ctx_t ctx, void *d_param, const void *d_grad,
                                    float *d_exp_avg, float *d_exp_avg_sq, int32_t dtype, int64_t n,
                                    float lr, float beta1, float beta2, float eps,
                                    float weight_decay, int64_t step);
/* AdamW's constants for `step` (out: 5 floats: 1 - lr*wd, 1 - beta1, 1 - beta2,
 * -lr / (1 - beta1^step), sqrt(1 - beta2^step)), exactly as the steps above
 * compute them; a host function. fp8_cuda_adamw_step_dev reads them from device
 * memory (d_consts), so a captured graph replays the step with each step's
 * constants uploaded before the launch (the CUDA-graph form of AdamW). */
FP8_API int32_t fp8_cuda_adamw_constants(float *out, float lr, float beta1, float beta2, float eps,
                                         float weight_decay, int64_t step);
FP8_API int32_t fp8_cuda_adamw_step_dev(fp8_cuda_ctx_t ctx, void *d_param, const void *d_grad,
                                        float *d_exp_avg, float *d_exp_avg_sq, int32_t dtype, int64_t n,
                                        const float *d_consts, float beta2, float eps);
/* [end nn-kernels] */
/* ==== end CUDA =========================================================== */

#ifdef __cplusplus
}
#endif

#endif /* FP8_H */
