/*
 * cuda_common.cuh — shared by libfp8_cuda's sources: the context object,
 * error reporting for CUDA / cuBLAS calls, the entry-point guard, and the
 * device-side scalar helpers (bf16 and fp8 encode/decode) every kernel uses.
 *
 * Error rules (fp8.h): every entry point validates its arguments, runs inside
 * fp8cuda::guard (no exception crosses the C ABI), checks each CUDA call and
 * each kernel launch (cudaGetLastError) and returns fp8_fail(...) with the
 * CUDA / cuBLAS error name. fp8_fail writes this library's own thread-local
 * message (status.c compiled in), read by fp8_cuda_last_error().
 */
#ifndef FP8_CUDA_COMMON_CUH
#define FP8_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>

#include "fp8_ref.h"
#include "internal.h"

namespace fp8cuda {

/* ---- the context ------------------------------------------------------- */

struct GemmPlan; /* gemm.cu */

/* Key of one cached cuBLASLt plan: everything the descriptors and the chosen
 * algorithm depend on (pointer values are set per call; their alignment is
 * part of the key because the heuristic may pick kernels that require it). */
struct GemmKey {
    int64_t m, n, k, batch_a, batch_b;
    int32_t a_type, b_type, c_type, trans_a, trans_b, epilogue, bias_type, fast_accum, scaled;
    int32_t align_a, align_b, align_c, align_bias;
    bool operator<(const GemmKey &o) const;
};

/* The first out-of-range index (embedding) or target (cross entropy) a kernel
 * met since the host last looked (fp8_cuda_take_index_error): op is one of
 * FP8_CUDA_INDEX_* (0: none), the valid range [0, limit). Lives in pinned,
 * mapped host memory: a kernel writes it only when it meets a bad value, and
 * the host reads it after a synchronisation it makes anyway (no extra copy;
 * docs/architecture.md, "Error model"). */
struct IndexError {
    int32_t op;
    int32_t index;
    int64_t limit;
};

struct Ctx {
    int device = 0;
    int sm_count = 0;
    cudaStream_t stream = nullptr;
    /* The context's own stream-ordered memory pool (cudaMemPoolCreate), which keeps
     * freed blocks: a training step then allocates without going back to the
     * driver, while the device's default pool (NCCL's, other libraries') keeps
     * its release threshold. Every allocation goes through pool_alloc. */
    cudaMemPool_t pool = nullptr;
    cublasLtHandle_t lt = nullptr;
    void *workspace = nullptr;
    size_t workspace_bytes = 0;
    /* Device scratch, stream-ordered (one reduction or GEMM at a time):
     * [0] amax bits, [1] finished-block counter (both zero between launches),
     * [2], [3] inverse scales of the current scaled_mm (floats). */
    uint32_t *scratch = nullptr;
    IndexError *index_error = nullptr;   /* host view (cudaHostAllocMapped) */
    IndexError *d_index_error = nullptr; /* the same memory, as kernels address it */
    cudaEvent_t timer_start = nullptr, timer_stop = nullptr;
    int cast_kernel = FP8_CUDA_CAST_REFERENCE;
    int rowwise_gemm = FP8_CUDA_ROWWISE_AUTO; /* fp8_cuda_set_rowwise_gemm */
    /* Block-scaled GEMMs (gemm.cu): the device's compute capability picks the cuBLASLt
     * scale modes it can take; fp8_cuda_set_block_gemm forces a path; the path the last
     * block GEMM took and why it fell back are kept for fp8_cuda_block_gemm_info. */
    int cc_major = 0, cc_minor = 0;
    int block_gemm = FP8_CUDA_BLOCK_GEMM_AUTO;
    int last_block_gemm = 0;
    char block_gemm_reason[320] = {0};
    bool capturing = false;
    /* Pinned staging for fp8_cuda_memcpy_h2d_async: a ring of buffers, each
     * with the event of the copy that last read it. */
    struct Staging {
        void *host = nullptr;
        size_t bytes = 0;
        cudaEvent_t done = nullptr;
    };
    static constexpr int kStagingSlots = 4;
    Staging staging[kStagingSlots];
    int staging_next = 0;
    std::map<GemmKey, GemmPlan *> plans;
    std::unordered_map<void *, int64_t> allocations;
    int64_t live_bytes = 0;
};

inline Ctx *unwrap(fp8_cuda_ctx_t c) { return reinterpret_cast<Ctx *>(c); }

/* Stream-ordered allocation from the context's pool, on its stream. */
inline cudaError_t pool_alloc(const Ctx *ctx, void **p, size_t bytes) {
    return cudaMallocFromPoolAsync(p, bytes, ctx->pool, ctx->stream);
}

void destroy_plans(Ctx *ctx); /* gemm.cu */

/* ---- errors -------------------------------------------------------------- */

/* Status for a CUDA error: out of memory, unsupported (no driver / GPU /
 * kernel image), or backend; message "fn: what: cudaErrorX (text)". */
int32_t cuda_fail(const char *fn, const char *what, cudaError_t err);
int32_t cublas_fail(const char *fn, const char *what, cublasStatus_t st);

#define FP8_CUDA_TRY(fn, what, call)                                          \
    do {                                                                      \
        cudaError_t e_ = (call);                                              \
        if (e_ != cudaSuccess) return ::fp8cuda::cuda_fail(fn, what, e_);     \
    } while (0)

/* After every <<<...>>>: a bad configuration or an earlier asynchronous fault
 * shows up here and is returned, not ignored. */
#define FP8_LAUNCH_CHECK(fn, kernel)                                                      \
    do {                                                                                  \
        cudaError_t e_ = cudaGetLastError();                                              \
        if (e_ != cudaSuccess) return ::fp8cuda::cuda_fail(fn, "launch of " kernel, e_);  \
    } while (0)

#define FP8_CUBLAS_TRY(fn, what, call)                                        \
    do {                                                                      \
        cublasStatus_t s_ = (call);                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS) return ::fp8cuda::cublas_fail(fn, what, s_); \
    } while (0)

/* Runs body() and turns any C++ exception into a status: nothing escapes
 * through the C ABI into Bun. */
template <class F>
int32_t guard(const char *fn, F &&body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc &) {
        return fp8_fail(FP8_ERR_OUT_OF_MEMORY, fn, "host allocation failed");
    } catch (const std::exception &e) {
        return fp8_fail(FP8_ERR_INTERNAL, fn, "unexpected exception: %s", e.what());
    } catch (...) {
        return fp8_fail(FP8_ERR_INTERNAL, fn, "unexpected exception");
    }
}

/* Validates ctx and makes its device current on this thread. */
int32_t enter(const char *fn, fp8_cuda_ctx_t c, Ctx **out);

/* In an entry point: declares `ctx` from the handle c, returning enter's error status. */
#define ENTER(fn, c, ctx)                             \
    fp8cuda::Ctx *ctx = nullptr;                      \
    do {                                              \
        int32_t st_ = fp8cuda::enter(fn, c, &ctx);    \
        if (st_ != FP8_OK) return st_;                \
    } while (0)

/* ---- validation helpers ---------------------------------------------------- */

inline bool aligned(const void *p, uintptr_t bytes) { return ((uintptr_t)p & (bytes - 1)) == 0; }

/* Blocks for a grid-stride kernel over `work` items of `threads` threads:
 * enough to fill the GPU several times, never more than the work needs. */
inline unsigned grid_for(const Ctx *ctx, int64_t work, int threads, int blocks_per_sm = 8) {
    int64_t need = (work + threads - 1) / threads;
    int64_t cap = (int64_t)ctx->sm_count * blocks_per_sm;
    if (need > cap) need = cap;
    return (unsigned)(need < 1 ? 1 : need);
}

/* Calls f(hp, fp8) with the (high-precision dtype, fp8 format) pair as
 * compile-time constants (std::integral_constant), so each cast entry point
 * instantiates its launcher once per pair and picks one at run time. Dtypes
 * already validated (F32 or BF16; E4M3FN or E5M2). */
template <class F>
void with_hp_fp8(int32_t hp_dtype, int32_t fp8_dtype, F &&f) {
    using F32 = std::integral_constant<int, FP8_DTYPE_F32>;
    using BF16 = std::integral_constant<int, FP8_DTYPE_BF16>;
    using E4M3 = std::integral_constant<int, FP8_DTYPE_E4M3FN>;
    using E5M2 = std::integral_constant<int, FP8_DTYPE_E5M2>;
    const bool e4m3 = fp8_dtype == FP8_DTYPE_E4M3FN;
    if (hp_dtype == FP8_DTYPE_F32) {
        if (e4m3) f(F32{}, E4M3{});
        else f(F32{}, E5M2{});
    } else {
        if (e4m3) f(BF16{}, E4M3{});
        else f(BF16{}, E5M2{});
    }
}

/* ---- device scalar helpers --------------------------------------------------- */

/* Records a bad index in *e unless one is recorded already (the first wins;
 * atomic among device threads, which is all that is needed: the host reads
 * it only after the stream is idle). */
__device__ __forceinline__ void report_bad_index(IndexError *e, int32_t op, int32_t index, int64_t limit) {
    if (atomicCAS(&e->op, 0, op) == 0) {
        e->index = index;
        e->limit = limit;
    }
}

/* f32 -> bf16 bits: the device twin of internal.h's fp8_f32_to_bf16 (RNE,
 * NaN kept quiet with its payload's top bits). Tested bit for bit on the GPU. */
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
__device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) { return __uint_as_float(h << 16); }

/* Element i of an F32 or BF16 array (dt), as f32; and a store rounding once to dt. */
__device__ __forceinline__ float load_hp(const void *p, int dt, int64_t i) {
    return dt == FP8_DTYPE_F32 ? ((const float *)p)[i] : bf16_bits_to_f32(((const uint16_t *)p)[i]);
}
__device__ __forceinline__ void store_hp(void *p, int dt, int64_t i, float v) {
    if (dt == FP8_DTYPE_F32)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = f32_to_bf16_bits(v);
}

/* 16-byte vectors (issue 16): element kernels that stream F32 / BF16 arrays load and
 * store one uint4 per step, kVec<DT> elements (4 f32 or 8 bf16), so that enough
 * bytes are in flight per SM to saturate HBM; the caller takes this path when
 * every pointer is 16-byte aligned and finishes the tail element by element. */
template <int DT>
constexpr int kVec = DT == FP8_DTYPE_F32 ? 4 : 8;
/* x[0..kVec) <- vector v of p (element v * kVec onwards), as f32. */
template <int DT>
__device__ __forceinline__ void load_vec(const void *p, int64_t v, float *x) {
    const uint4 u = ((const uint4 *)p)[v];
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
    for (int k = 0; k < 4; k++) {
        if (DT == FP8_DTYPE_F32) {
            x[k] = __uint_as_float(w[k]);
        } else {
            x[2 * k] = bf16_bits_to_f32(w[k] & 0xffffu);
            x[2 * k + 1] = bf16_bits_to_f32(w[k] >> 16);
        }
    }
}
/* vector v of p <- x[0..kVec), each rounded once to DT. */
template <int DT>
__device__ __forceinline__ void store_vec(void *p, int64_t v, const float *x) {
    uint32_t w[4];
    for (int k = 0; k < 4; k++)
        w[k] = DT == FP8_DTYPE_F32 ? __float_as_uint(x[k])
                                   : (uint32_t)f32_to_bf16_bits(x[2 * k]) | ((uint32_t)f32_to_bf16_bits(x[2 * k + 1]) << 16);
    ((uint4 *)p)[v] = make_uint4(w[0], w[1], w[2], w[3]);
}
/* The same kVec<DT> elements of an f32 array (optimizer state): kVec / 4 float4s. */
template <int DT>
__device__ __forceinline__ void load_vec_f32(const float *p, int64_t v, float *x) {
    for (int k = 0; k < kVec<DT> / 4; k++) {
        const float4 f = ((const float4 *)p)[v * (kVec<DT> / 4) + k];
        x[4 * k] = f.x, x[4 * k + 1] = f.y, x[4 * k + 2] = f.z, x[4 * k + 3] = f.w;
    }
}
template <int DT>
__device__ __forceinline__ void store_vec_f32(float *p, int64_t v, const float *x) {
    for (int k = 0; k < kVec<DT> / 4; k++)
        ((float4 *)p)[v * (kVec<DT> / 4) + k] = make_float4(x[4 * k], x[4 * k + 1], x[4 * k + 2], x[4 * k + 3]);
}
inline bool all_aligned16(std::initializer_list<const void *> ps) {
    for (const void *p : ps)
        if (p && ((uintptr_t)p & 15u)) return false;
    return true;
}

/* Row walks in 16-byte chunks (issue 16; used by nn_kernels.cu and tensor_kernels.cu). */

/* The width of one visit: 1 element or a chunk of N = kVec<DT>. */
template <int N>
struct Width {
    static constexpr int n = N;
};

/* x[0..N) <- elements i .. i + N - 1 of p (DT), as f32: one 16-byte load when
 * N is a whole vector and vec (p is 16-byte aligned; i is then a multiple of N),
 * else element by element. */
template <int DT, int N>
__device__ __forceinline__ void load_n(const void *p, int64_t i, bool vec, float *x) {
    if constexpr (N == kVec<DT>) {
        if (vec) {
            load_vec<DT>(p, i / N, x);
            return;
        }
    }
    for (int j = 0; j < N; j++) x[j] = load_hp(p, DT, i + j);
}
/* elements i .. i + N - 1 of p <- x[0..N), each rounded once to DT. */
template <int DT, int N>
__device__ __forceinline__ void store_n(void *p, int64_t i, bool vec, const float *x) {
    if constexpr (N == kVec<DT>) {
        if (vec) {
            store_vec<DT>(p, i / N, x);
            return;
        }
    }
    for (int j = 0; j < N; j++) store_hp(p, DT, i + j, x[j]);
}

/* Calls f(Width<N>{}, c) for this lane's part of the row at array indices
 * [base, base + cols): N elements from column c. The row is cut at the array
 * indices that are multiples of V = kVec<DT>: a head of (-base) mod V
 * elements, whole chunks of V, a tail; lane l of the G lanes visits head
 * element l, chunks l, l + G, ..., then tail element l. The order of a lane's
 * visits depends only on (base mod V, cols, G), not on whether the chunks are
 * read as vectors (nn_kernels.cu, "rows in 16-byte chunks"). */
template <int G, int DT, class F>
__device__ __forceinline__ void for_row(int lane, int64_t base, int64_t cols, F &&f) {
    constexpr int V = kVec<DT>;
    const int64_t head = min((int64_t)((V - base % V) % V), cols);
    const int64_t chunks = (cols - head) / V, tail = head + chunks * V;
    if (lane < head) f(Width<1>{}, (int64_t)lane);
    for (int64_t k = lane; k < chunks; k += G) f(Width<V>{}, head + k * V);
    if (tail + lane < cols) f(Width<1>{}, tail + lane);
}

template <int FP8>
__device__ __forceinline__ uint8_t encode_ref(float y) {
    return FP8 == FP8_DTYPE_E5M2 ? fp8_ref_e5m2_from_f32(y) : fp8_ref_e4m3fn_from_f32(y);
}
template <int FP8>
__device__ __forceinline__ float decode_fp8(uint8_t b) {
    return FP8 == FP8_DTYPE_E5M2 ? fp8_ref_e5m2_to_f32(b) : fp8_ref_e4m3fn_to_f32(b);
}

/* Two f32 -> two fp8 bytes (lo in bits 0..7). CAST_REFERENCE runs the integer
 * encoder of fp8_ref.h; CAST_HARDWARE one cvt.rn.satfinite (sm_89+), which
 * clamps finite overflow and inf to +-max and rounds to nearest even like the
 * reference, followed by a fix-up that gives NaN inputs the reference's
 * sign-preserving 0x7F | sign. */
template <int FP8, int KERNEL>
__device__ __forceinline__ uint32_t encode2(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    if (KERNEL == FP8_CUDA_CAST_HARDWARE) {
        uint16_t packed;
        if (FP8 == FP8_DTYPE_E5M2)
            asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(packed) : "f"(hi), "f"(lo));
        else
            asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(packed) : "f"(hi), "f"(lo));
        uint32_t r = packed;
        uint32_t ul = __float_as_uint(lo), uh = __float_as_uint(hi);
        if ((ul & 0x7fffffffu) > 0x7f800000u) r = (r & 0xff00u) | ((ul >> 24) & 0x80u) | 0x7fu;
        if ((uh & 0x7fffffffu) > 0x7f800000u) r = (r & 0x00ffu) | (((uh >> 24) & 0x80u) << 8) | 0x7f00u;
        return r;
    }
#endif
    return (uint32_t)encode_ref<FP8>(lo) | ((uint32_t)encode_ref<FP8>(hi) << 8);
}

/* Four f32 (already multiplied by the scale) -> four fp8 bytes in a word. */
template <int FP8, int KERNEL>
__device__ __forceinline__ uint32_t encode4(float a, float b, float c, float d) {
    return encode2<FP8, KERNEL>(a, b) | (encode2<FP8, KERNEL>(c, d) << 16);
}

/* NaN results as x86 SSE/AVX gives them, since the CPU reference runs there:
 * a NaN operand comes back quieted (the first source if both are NaN) and an
 * invalid operation (inf * 0, 0 / 0) gives the negative "indefinite" NaN
 * 0xFFC00000. The GPU returns the canonical 0x7FFFFFFF instead, which would
 * flip the sign bit that the fp8 encoders keep (NaN -> 0x7F | sign). */
__device__ __forceinline__ float quiet_nan(float x) { return __uint_as_float(__float_as_uint(x) | 0x400000u); }
__device__ __forceinline__ float x86_nan(float first, float second) {
    return isnan(first) ? quiet_nan(first) : isnan(second) ? quiet_nan(second) : __uint_as_float(0xffc00000u);
}
/* x * scale: one IEEE f32 multiply (never contracted into an FMA). The CPU's
 * AVX2 / AVX-512 kernels (the default paths) issue vmulps with the broadcast
 * scale as first source, so a NaN scale wins over a NaN x. (Its portable C
 * path lets x win; the two CPU paths differ only when both are NaN.) */
__device__ __forceinline__ float mul_x86(float x, float scale) {
    float y = __fmul_rn(x, scale);
    return isnan(y) ? x86_nan(scale, x) : y;
}
/* x / scale: one IEEE f32 division (x is the first source). */
__device__ __forceinline__ float div_x86(float x, float scale) {
    float y = __fdiv_rn(x, scale);
    return isnan(y) ? x86_nan(x, scale) : y;
}

}  // namespace fp8cuda

#endif
