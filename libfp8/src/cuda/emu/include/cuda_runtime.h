/*
 * cuda_runtime.h (emulated) — the part of the CUDA runtime API and of the
 * device language that the .cu files of libfp8/src/cuda use, so that a host C++ compiler
 * builds them and their kernels run on the CPU (libfp8_cuda_emu, see
 * ../CMakeLists.txt). Only found through -I by that build; nvcc never sees it.
 *
 * Execution model (runtime.cpp): a launch runs its blocks one after another;
 * a block runs each of its threads as a fiber on the calling thread, switching
 * at __syncthreads and at warp collectives (shuffles, __reduce_max_sync), so
 * barriers and shuffles have their real semantics and __shared__ can be a
 * function-local static. Device memory is host memory.
 *
 * What this checks beyond results: launch configurations (as the GPU refuses
 * them), a __syncthreads or warp collective that not every thread of the block
 * or warp reaches (reported as a launch failure, never a hang), and stray
 * frees. What it cannot: the GPU's own libm (expf, erff, ... here are glibc's),
 * the hardware fp8 encoder (cvt.rn.satfinite, sm_89+ asm: the reference encoder
 * runs instead), which a*b+c nvcc contracts into FMAs (the host compiler
 * contracts where it likes, see FP8_CUDA_EMU_FMA in ../CMakeLists.txt), the
 * GPU's canonical NaN (host arithmetic keeps x86's NaN payloads), and memory
 * races between blocks (blocks never overlap here).
 */
#ifndef FP8_CUDA_EMU_CUDA_RUNTIME_H
#define FP8_CUDA_EMU_CUDA_RUNTIME_H

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define FP8_CUDA_EMU 1
#define CUDART_VERSION 12090

/* ---- qualifiers ------------------------------------------------------------ */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
/* Blocks of a launch run one after another, so one copy serves each block in
 * turn (never zeroed between blocks, like shared memory is not). */
#define __shared__ static

using std::isfinite;
using std::isinf;
using std::isnan;

/* ---- errors, handles, enums ------------------------------------------------- */
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInsufficientDriver = 35,
    cudaErrorCallRequiresNewerDriver = 36,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorStubLibrary = 34,
    cudaErrorNoKernelImageForDevice = 209,
    cudaErrorUnsupportedPtxVersion = 222,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorLaunchFailure = 719,
};

struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;
struct CUmemPoolHandle_st;
typedef CUstream_st *cudaStream_t;
typedef CUevent_st *cudaEvent_t;
typedef CUgraph_st *cudaGraph_t;
typedef CUgraphExec_st *cudaGraphExec_t;
typedef CUmemPoolHandle_st *cudaMemPool_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum { cudaStreamDefault = 0, cudaStreamNonBlocking = 1 };
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };
enum cudaMemAllocationType { cudaMemAllocationTypeInvalid = 0, cudaMemAllocationTypePinned = 1 };
enum cudaMemAllocationHandleType { cudaMemHandleTypeNone = 0 };
enum cudaMemLocationType { cudaMemLocationTypeInvalid = 0, cudaMemLocationTypeDevice = 1 };
struct cudaMemLocation {
    cudaMemLocationType type;
    int id;
};
struct cudaMemPoolProps {
    cudaMemAllocationType allocType;
    cudaMemAllocationHandleType handleTypes;
    cudaMemLocation location;
    size_t maxSize;
};
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
enum cudaDataType_t { /* library_types.h */
    CUDA_R_32F = 0,
    CUDA_R_16F = 2,
    CUDA_R_16BF = 14,
    CUDA_R_8F_E4M3 = 28,
    CUDA_R_8F_E5M2 = 29,
};

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
    int warpSize;
    int maxThreadsPerBlock;
};

/* ---- vector types ------------------------------------------------------------
 * The GPU faults on a vector load or store that is not aligned to its size;
 * x86 does not. So copies of the emulated uint2 / uint4 / float2 / float4
 * check the alignment of both ends and fail the launch when one is off (a
 * kernel reads and writes vectors only by copying them). */
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x, y, z;
};
namespace fp8emu {
/* Fails the running launch: a vector of `bytes` at p is misaligned. */
[[noreturn]] void misaligned(const void *p, int bytes);
inline void check_aligned(const void *p, int bytes) {
    if ((uintptr_t)p & (uintptr_t)(bytes - 1)) misaligned(p, bytes);
}
}  // namespace fp8emu
#define FP8_EMU_VECTOR(name, T, n, ...)                                                    \
    struct alignas(sizeof(T) * n) name {                                                   \
        T __VA_ARGS__;                                                                     \
        name() = default;                                                                  \
        name(const name &o) {                                                              \
            fp8emu::check_aligned(&o, sizeof(T) * n);                                      \
            std::memcpy((void *)this, (const void *)&o, sizeof(T) * n);                    \
        }                                                                                  \
        name &operator=(const name &o) {                                                   \
            fp8emu::check_aligned(this, sizeof(T) * n);                                    \
            fp8emu::check_aligned(&o, sizeof(T) * n);                                      \
            std::memcpy((void *)this, (const void *)&o, sizeof(T) * n);                    \
            return *this;                                                                  \
        }                                                                                  \
    };
FP8_EMU_VECTOR(uint2, unsigned, 2, x, y)
FP8_EMU_VECTOR(uint4, unsigned, 4, x, y, z, w)
FP8_EMU_VECTOR(float2, float, 2, x, y)
FP8_EMU_VECTOR(float4, float, 4, x, y, z, w)
#undef FP8_EMU_VECTOR
inline uint2 make_uint2(unsigned x, unsigned y) {
    uint2 r;
    r.x = x, r.y = y;
    return r;
}
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
    uint4 r;
    r.x = x, r.y = y, r.z = z, r.w = w;
    return r;
}
inline float2 make_float2(float x, float y) {
    float2 r;
    r.x = x, r.y = y;
    return r;
}
inline float4 make_float4(float x, float y, float z, float w) {
    float4 r;
    r.x = x, r.y = y, r.z = z, r.w = w;
    return r;
}

/* ---- the runtime API (runtime.cpp) ---------------------------------------------- */
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char *cudaGetErrorName(cudaError_t e);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDeviceSynchronize();

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);

cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t stop);

enum { cudaHostAllocDefault = 0, cudaHostAllocMapped = 2 };
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags);
cudaError_t cudaHostGetDevicePointer(void **d, void *host, unsigned int flags);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t s);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *pool, int d);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void *value);
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void *value);
cudaError_t cudaMemPoolCreate(cudaMemPool_t *pool, const cudaMemPoolProps *props);
cudaError_t cudaMemPoolDestroy(cudaMemPool_t pool);
cudaError_t cudaMallocFromPoolAsync(void **p, size_t bytes, cudaMemPool_t pool, cudaStream_t s);

/* ---- kernel launches ---------------------------------------------------------------
 * The build rewrites `kernel<<<grid, block, smem, stream>>>(args)` into
 * `::fp8emu::launch(__FILE__, __LINE__, "kernel", kernel, grid, block, smem, stream)(args)`
 * (rewrite_launches.cmake). The arguments are converted to the kernel's
 * parameter types once, as a launch copies them, and the grid runs at once, or
 * is recorded when the stream is capturing a graph. */
namespace fp8emu {

struct Site {
    const char *file;
    int line;
    const char *kernel;
};

/* The error a test asked the named emulated call to fail with now, or 0
 * (fp8_cuda_emu_fail_call in fp8_cuda_emu.h). */
int injected_failure(const char *call);

/* Runs (or records) body as a grid; sets the error cudaGetLastError reports. */
void submit_grid(const Site &site, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                 std::function<void()> body);
/* Runs (or records) a host function in stream order (memcpy, memset, CUB). */
cudaError_t submit_host(cudaStream_t stream, std::function<void()> op);

template <class... P>
struct Launch {
    Site site;
    void (*kernel)(P...);
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    template <class... A>
    void operator()(A &&...a) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
        std::tuple<std::decay_t<P>...> args(std::forward<A>(a)...);
        void (*k)(P...) = kernel;
        submit_grid(site, grid, block, smem, stream, [k, args]() { std::apply(k, args); });
    }
};

template <class... P>
Launch<P...> launch(const char *file, int line, const char *name, void (*kernel)(P...), dim3 grid, dim3 block,
                    size_t smem = 0, cudaStream_t stream = nullptr) {
    return Launch<P...>{{file, line, name}, kernel, grid, block, smem, stream};
}

/* Warp collectives of the running thread (runtime.cpp): every lane of the warp
 * publishes 8 bytes and reads those of lane (its lane ^ lane_mask), or the max
 * over the warp. */
uint64_t warp_shfl_xor(unsigned mask, uint64_t bits, int lane_mask);
uint32_t warp_reduce_max(unsigned mask, uint32_t v);
void block_barrier();

}  // namespace fp8emu

/* ---- device built-ins ------------------------------------------------------------ */
/* The running thread's indices and the launch's shape (set by the scheduler). */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

inline void __syncthreads() { fp8emu::block_barrier(); }
inline void __threadfence() {}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of an unsupported type");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = fp8emu::warp_shfl_xor(mask, bits, lane_mask);
    T r;
    std::memcpy(&r, &bits, sizeof(T));
    return r;
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) { return fp8emu::warp_reduce_max(mask, v); }

/* Blocks run one at a time and fibers switch only at barriers and warp
 * collectives, so a plain read-modify-write is atomic here. */
inline unsigned atomicMax(unsigned *p, unsigned v) {
    const unsigned old = *p;
    if (v > old) *p = v;
    return old;
}
inline unsigned atomicAdd(unsigned *p, unsigned v) {
    const unsigned old = *p;
    *p = old + v;
    return old;
}
inline unsigned atomicMin(unsigned *p, unsigned v) {
    const unsigned old = *p;
    if (v < old) *p = v;
    return old;
}
inline int atomicCAS(int *p, int compare, int v) {
    const int old = *p;
    if (old == compare) *p = v;
    return old;
}
inline unsigned atomicExch(unsigned *p, unsigned v) {
    const unsigned old = *p;
    *p = v;
    return old;
}

inline uint32_t __float_as_uint(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
/* Per 16-bit half: unsigned max. */
inline unsigned __vmaxu2(unsigned a, unsigned b) {
    const unsigned lo = (a & 0xffffu) > (b & 0xffffu) ? a & 0xffffu : b & 0xffffu;
    const unsigned hi = (a >> 16) > (b >> 16) ? a >> 16 : b >> 16;
    return lo | (hi << 16);
}
/* Byte n of the result is byte (s >> 4n) & 7 of the 8 bytes {x (0..3), y (4..7)}. */
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    const uint64_t in = (uint64_t)x | ((uint64_t)y << 32);
    unsigned r = 0;
    for (int n = 0; n < 4; n++) r |= (unsigned)((in >> (8 * ((s >> (4 * n)) & 7u))) & 0xffu) << (8 * n);
    return r;
}

/* Rounded arithmetic that must never be contracted into an FMA: the empty asm
 * hides the value from the optimizer, as the _rn intrinsics do for nvcc. */
#if defined(__x86_64__) || defined(__i386__)
#define FP8_EMU_OPAQUE(v) __asm__("" : "+x"(v))
#elif defined(__aarch64__)
#define FP8_EMU_OPAQUE(v) __asm__("" : "+w"(v))
#else
#define FP8_EMU_OPAQUE(v) \
    do {                  \
        volatile auto t_ = (v); \
        (v) = t_;         \
    } while (0)
#endif
#define FP8_EMU_RN(T, name, expr)          \
    inline T name(T a, T b) {              \
        T r = (expr);                      \
        FP8_EMU_OPAQUE(r);                 \
        return r;                          \
    }
FP8_EMU_RN(float, __fadd_rn, a + b)
FP8_EMU_RN(float, __fsub_rn, a - b)
FP8_EMU_RN(float, __fmul_rn, a * b)
FP8_EMU_RN(float, __fdiv_rn, a / b)
FP8_EMU_RN(double, __dadd_rn, a + b)
FP8_EMU_RN(double, __dsub_rn, a - b)
FP8_EMU_RN(double, __dmul_rn, a * b)
FP8_EMU_RN(double, __ddiv_rn, a / b)
#undef FP8_EMU_RN
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float cospif(float x) { return (float)cos(3.14159265358979323846 * (double)x); }

/* The device min/max overloads: the usual arithmetic conversions, as CUDA's
 * integer overloads (e.g. max(unsigned, unsigned) stays unsigned). */
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
    return a > b ? (std::common_type_t<A, B>)a : (std::common_type_t<A, B>)b;
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
    return a < b ? (std::common_type_t<A, B>)a : (std::common_type_t<A, B>)b;
}

#endif
