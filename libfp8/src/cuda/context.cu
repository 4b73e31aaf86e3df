/*
 * context.cu — libfp8_cuda's runtime side: probing the driver and devices,
 * the context (stream, cuBLASLt handle, workspace, scratch), stream-ordered
 * device memory, copies, timers and graph capture. Kernels are in
 * cast_kernels.cu and eltwise_kernels.cu, GEMMs in gemm.cu.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_common.cuh"

namespace fp8cuda {

namespace {
constexpr size_t kWorkspaceBytes = (size_t)32 << 20; /* cuBLASLt on Hopper: 32 MiB */
constexpr size_t kScratchBytes = 256;
constexpr int kMinMajor = 9; /* SASS for sm_90, sm_100, sm_120; compute_90 PTX for the rest */

bool is_unsupported(cudaError_t e) {
    return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
           e == cudaErrorStubLibrary || e == cudaErrorNoKernelImageForDevice ||
           e == cudaErrorUnsupportedPtxVersion || e == cudaErrorCallRequiresNewerDriver ||
           e == cudaErrorInvalidDevice;
}

/* A sentence for the two failures a user meets first. */
const char *hint(cudaError_t e) {
    switch (e) {
    case cudaErrorInsufficientDriver:
    case cudaErrorStubLibrary: return "; no usable NVIDIA driver (libcuda.so.1)";
    case cudaErrorNoDevice: return "; no GPU visible (check CUDA_VISIBLE_DEVICES and nvidia-smi)";
    case cudaErrorNoKernelImageForDevice:
        return "; libfp8_cuda has no code for this GPU (built for sm_90, sm_100, sm_120 and compute_90 PTX; see FP8_CUDA_ARCHS)";
    default: return "";
    }
}
/* The encoder of a new context's casts: $FP8_CUDA_CAST_KERNEL when set, else
 * the hardware encoder (cvt.rn.satfinite), which bench/gpu/check.sh compares
 * with the reference on every f32 and bf16 pattern before anything else runs
 * and turns off (FP8_CUDA_CAST_KERNEL=reference) if they differ. The emulator
 * has no hardware encoder and keeps the reference. */
int default_cast_kernel() {
    const char *env = getenv("FP8_CUDA_CAST_KERNEL");
    if (env && strcmp(env, "reference") == 0) return FP8_CUDA_CAST_REFERENCE;
    if (env && strcmp(env, "hardware") == 0) return FP8_CUDA_CAST_HARDWARE;
#ifdef FP8_CUDA_EMU
    return FP8_CUDA_CAST_REFERENCE;
#else
    return FP8_CUDA_CAST_HARDWARE;
#endif
}
}  // namespace

int32_t cuda_fail(const char *fn, const char *what, cudaError_t err) {
    /* The runtime also keeps a failed call's error as its "last error"; clear
     * it so the next launch check does not report it again. (A sticky error,
     * a fault inside a kernel, stays: the context is then unusable anyway.) */
    cudaGetLastError();
    int32_t status = err == cudaErrorMemoryAllocation ? FP8_ERR_OUT_OF_MEMORY
                     : is_unsupported(err)             ? FP8_ERR_UNSUPPORTED
                                                       : FP8_ERR_BACKEND;
    return fp8_fail(status, fn, "%s: %s (%s)%s", what, cudaGetErrorName(err),
                    cudaGetErrorString(err), hint(err));
}

int32_t cublas_fail(const char *fn, const char *what, cublasStatus_t st) {
    int32_t status = st == CUBLAS_STATUS_ALLOC_FAILED   ? FP8_ERR_OUT_OF_MEMORY
                     : st == CUBLAS_STATUS_NOT_SUPPORTED ? FP8_ERR_UNSUPPORTED
                                                         : FP8_ERR_BACKEND;
    return fp8_fail(status, fn, "%s: %s (%s)", what, cublasLtGetStatusName(st),
                    cublasLtGetStatusString(st));
}

int32_t enter(const char *fn, fp8_cuda_ctx_t c, Ctx **out) {
    FP8_REQUIRE(c != NULL, fn, "ctx is NULL");
    Ctx *ctx = unwrap(c);
    int current = -1;
    FP8_CUDA_TRY(fn, "cudaGetDevice", cudaGetDevice(&current));
    if (current != ctx->device) FP8_CUDA_TRY(fn, "cudaSetDevice", cudaSetDevice(ctx->device));
    *out = ctx;
    return FP8_OK;
}

}  // namespace fp8cuda

using namespace fp8cuda;

extern "C" {

FP8_API const char *fp8_cuda_last_error(void) { return fp8_last_error(); }

FP8_API int32_t fp8_cuda_probe(int32_t *state, int32_t *device_count, int32_t *driver_version,
                               int32_t *runtime_version) {
    static const char fn[] = "fp8_cuda_probe";
    return guard(fn, [&]() -> int32_t {
        int drv = 0, rt = 0, count = 0, s = FP8_CUDA_READY;
        cudaRuntimeGetVersion(&rt);
        cudaError_t e = cudaDriverGetVersion(&drv);
        if (e != cudaSuccess || drv == 0) {
            s = FP8_CUDA_NO_DRIVER;
            fp8_fail(FP8_ERR_UNSUPPORTED, fn,
                     "no NVIDIA driver: libcuda.so.1 was not found or could not be loaded");
        } else if ((e = cudaGetDeviceCount(&count)) != cudaSuccess) {
            count = 0;
            if (e == cudaErrorInsufficientDriver) {
                s = FP8_CUDA_DRIVER_TOO_OLD;
                fp8_fail(FP8_ERR_UNSUPPORTED, fn,
                         "the NVIDIA driver (CUDA %d.%d) is older than the CUDA runtime built "
                         "into libfp8_cuda (%d.%d)",
                         drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
            } else if (e == cudaErrorNoDevice) {
                s = FP8_CUDA_NO_DEVICE;
                fp8_fail(FP8_ERR_UNSUPPORTED, fn, "NVIDIA driver found, but no GPU is visible");
            } else {
                s = FP8_CUDA_ERROR;
                cuda_fail(fn, "cudaGetDeviceCount", e);
            }
            cudaGetLastError(); /* the probe's failure must not leak into the next call */
        } else if (count == 0) {
            s = FP8_CUDA_NO_DEVICE;
            fp8_fail(FP8_ERR_UNSUPPORTED, fn, "NVIDIA driver found, but no GPU is visible");
        }
        if (state) *state = s;
        if (device_count) *device_count = count;
        if (driver_version) *driver_version = drv;
        if (runtime_version) *runtime_version = rt;
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_device_info(int32_t device, int32_t *cc_major, int32_t *cc_minor,
                                     int32_t *sm_count, int64_t *total_mem, char *name,
                                     int64_t name_cap) {
    static const char fn[] = "fp8_cuda_device_info";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE(name == NULL || name_cap > 0, fn, "name_cap must be > 0 when name is given");
        int count = 0;
        FP8_CUDA_TRY(fn, "cudaGetDeviceCount", cudaGetDeviceCount(&count));
        FP8_REQUIRE(device >= 0 && device < count, fn, "device %d out of range: %d GPU(s) visible",
                    (int)device, count);
        cudaDeviceProp p;
        FP8_CUDA_TRY(fn, "cudaGetDeviceProperties", cudaGetDeviceProperties(&p, device));
        if (cc_major) *cc_major = p.major;
        if (cc_minor) *cc_minor = p.minor;
        if (sm_count) *sm_count = p.multiProcessorCount;
        if (total_mem) *total_mem = (int64_t)p.totalGlobalMem;
        if (name) snprintf(name, (size_t)name_cap, "%s", p.name);
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_ctx_create(int32_t device, fp8_cuda_ctx_t *out) {
    static const char fn[] = "fp8_cuda_ctx_create";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(out, fn);
        *out = nullptr;
        int32_t state = 0, count = 0;
        fp8_cuda_probe(&state, &count, nullptr, nullptr);
        if (state != FP8_CUDA_READY) {
            /* keep the probe's explanation, naming this function */
            char why[512];
            snprintf(why, sizeof why, "%s", fp8_last_error());
            return fp8_fail(FP8_ERR_UNSUPPORTED, fn, "CUDA unavailable: %s", why);
        }
        FP8_REQUIRE(device >= 0 && device < count, fn, "device %d out of range: %d GPU(s) visible",
                    (int)device, (int)count);
        cudaDeviceProp p;
        FP8_CUDA_TRY(fn, "cudaGetDeviceProperties", cudaGetDeviceProperties(&p, device));
        if (p.major < kMinMajor)
            return fp8_fail(FP8_ERR_UNSUPPORTED, fn,
                            "device %d (%s) has compute capability %d.%d; libfp8_cuda is built "
                            "for 9.0 and later (sm_90, sm_100, sm_120 and compute_90 PTX)",
                            (int)device, p.name, p.major, p.minor);
        FP8_CUDA_TRY(fn, "cudaSetDevice", cudaSetDevice(device));

        Ctx *ctx = new Ctx();
        ctx->device = device;
        ctx->cast_kernel = default_cast_kernel();
        ctx->sm_count = p.multiProcessorCount;
        ctx->cc_major = p.major, ctx->cc_minor = p.minor;
        /* On failure below, release what exists and return the status. */
        auto fail = [&](int32_t st) {
            if (ctx->timer_stop) cudaEventDestroy(ctx->timer_stop);
            if (ctx->timer_start) cudaEventDestroy(ctx->timer_start);
            if (ctx->scratch) cudaFree(ctx->scratch);
            if (ctx->index_error) cudaFreeHost(ctx->index_error);
            if (ctx->workspace) cudaFree(ctx->workspace);
            if (ctx->lt) cublasLtDestroy(ctx->lt);
            if (ctx->stream) cudaStreamDestroy(ctx->stream);
            if (ctx->pool) cudaMemPoolDestroy(ctx->pool);
            delete ctx;
            return st;
        };
        cudaError_t e;
        cublasStatus_t s;
        if ((e = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking)) != cudaSuccess)
            return fail(cuda_fail(fn, "cudaStreamCreateWithFlags", e));
        if ((s = cublasLtCreate(&ctx->lt)) != CUBLAS_STATUS_SUCCESS)
            return fail(cublas_fail(fn, "cublasLtCreate", s));
        ctx->workspace_bytes = kWorkspaceBytes;
        if ((e = cudaMalloc(&ctx->workspace, kWorkspaceBytes)) != cudaSuccess)
            return fail(cuda_fail(fn, "cudaMalloc(workspace)", e));
        if ((e = cudaMalloc((void **)&ctx->scratch, kScratchBytes)) != cudaSuccess)
            return fail(cuda_fail(fn, "cudaMalloc(scratch)", e));
        /* On the context's own stream: cudaMemset would run on the legacy default
         * stream, which this non-blocking stream does not wait for, so the first
         * reduction could read an unzeroed block counter (issue 16). */
        if ((e = cudaMemsetAsync(ctx->scratch, 0, kScratchBytes, ctx->stream)) != cudaSuccess)
            return fail(cuda_fail(fn, "cudaMemsetAsync(scratch)", e));
        if ((e = cudaHostAlloc((void **)&ctx->index_error, sizeof(IndexError), cudaHostAllocMapped)) != cudaSuccess)
            return fail(cuda_fail(fn, "cudaHostAlloc(index error flag)", e));
        memset(ctx->index_error, 0, sizeof(IndexError));
        if ((e = cudaHostGetDevicePointer((void **)&ctx->d_index_error, ctx->index_error, 0)) != cudaSuccess)
            return fail(cuda_fail(fn, "cudaHostGetDevicePointer(index error flag)", e));
        if ((e = cudaEventCreate(&ctx->timer_start)) != cudaSuccess ||
            (e = cudaEventCreate(&ctx->timer_stop)) != cudaSuccess)
            return fail(cuda_fail(fn, "cudaEventCreate", e));
        /* The context's own pool keeps freed blocks (release threshold "never"): a
         * training step then allocates without going back to the driver. The
         * process-wide default pool is left alone, so that NCCL and other
         * libraries in the process are not starved of memory (issue 16). */
        cudaMemPoolProps props;
        memset(&props, 0, sizeof props);
        props.allocType = cudaMemAllocationTypePinned;
        props.handleTypes = cudaMemHandleTypeNone;
        props.location.type = cudaMemLocationTypeDevice;
        props.location.id = device;
        if ((e = cudaMemPoolCreate(&ctx->pool, &props)) != cudaSuccess)
            return fail(cuda_fail(fn, "cudaMemPoolCreate", e));
        uint64_t keep = UINT64_MAX;
        if ((e = cudaMemPoolSetAttribute(ctx->pool, cudaMemPoolAttrReleaseThreshold, &keep)) != cudaSuccess)
            return fail(cuda_fail(fn, "cudaMemPoolSetAttribute", e));
        *out = reinterpret_cast<fp8_cuda_ctx_t>(ctx);
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_ctx_destroy(fp8_cuda_ctx_t c) {
    static const char fn[] = "fp8_cuda_ctx_destroy";
    if (c == NULL) return FP8_OK;
    return guard(fn, [&]() -> int32_t {
        Ctx *ctx = unwrap(c);
        cudaSetDevice(ctx->device);
        /* Everything is released even when the stream reports an error; the
         * first error is returned. */
        cudaError_t first = cudaStreamSynchronize(ctx->stream);
        for (auto &kv : ctx->allocations) cudaFreeAsync(kv.first, ctx->stream);
        ctx->allocations.clear();
        destroy_plans(ctx);
        cudaError_t e = cudaStreamSynchronize(ctx->stream);
        if (first == cudaSuccess) first = e;
        cudaEventDestroy(ctx->timer_start);
        cudaEventDestroy(ctx->timer_stop);
        for (auto &s : ctx->staging) { /* the stream is idle: no copy reads them */
            if (s.done) cudaEventDestroy(s.done);
            if (s.host) cudaFreeHost(s.host);
        }
        cudaFree(ctx->scratch);
        cudaFreeHost(ctx->index_error);
        cudaFree(ctx->workspace);
        cublasLtDestroy(ctx->lt);
        cudaStreamDestroy(ctx->stream);
        cudaMemPoolDestroy(ctx->pool); /* after the frees above completed */
        delete ctx;
        if (first != cudaSuccess) return cuda_fail(fn, "queued work", first);
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_ctx_stream(fp8_cuda_ctx_t c, void **out) {
    static const char fn[] = "fp8_cuda_ctx_stream";
    FP8_REQUIRE(c != NULL, fn, "ctx is NULL");
    FP8_REQUIRE_PTR(out, fn);
    *out = (void *)unwrap(c)->stream;
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_gemm_plans(fp8_cuda_ctx_t c, int64_t *out) {
    static const char fn[] = "fp8_cuda_gemm_plans";
    FP8_REQUIRE(c != NULL, fn, "ctx is NULL");
    FP8_REQUIRE_PTR(out, fn);
    *out = (int64_t)unwrap(c)->plans.size();
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_set_cast_kernel(fp8_cuda_ctx_t c, int32_t kernel) {
    static const char fn[] = "fp8_cuda_set_cast_kernel";
    FP8_REQUIRE(c != NULL, fn, "ctx is NULL");
    FP8_REQUIRE(kernel == FP8_CUDA_CAST_REFERENCE || kernel == FP8_CUDA_CAST_HARDWARE, fn,
                "kernel must be 0 (reference) or 1 (hardware), got %d", (int)kernel);
    unwrap(c)->cast_kernel = kernel;
    return FP8_OK;
}

FP8_API int32_t fp8_cuda_synchronize(fp8_cuda_ctx_t c) {
    static const char fn[] = "fp8_cuda_synchronize";
    return guard(fn, [&]() -> int32_t {
        ENTER(fn, c, ctx);
        FP8_REQUIRE(!ctx->capturing, fn, "not allowed while capturing a graph");
        FP8_CUDA_TRY(fn, "cudaStreamSynchronize", cudaStreamSynchronize(ctx->stream));
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_take_index_error(fp8_cuda_ctx_t c, int32_t *op, int64_t *index, int64_t *limit) {
    static const char fn[] = "fp8_cuda_take_index_error";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(op, fn);
        FP8_REQUIRE_PTR(index, fn);
        FP8_REQUIRE_PTR(limit, fn);
        ENTER(fn, c, ctx);
        volatile IndexError *e = ctx->index_error; /* written by the device */
        *op = e->op;
        *index = *op ? e->index : 0;
        *limit = *op ? e->limit : 0;
        if (*op) {
            e->index = 0;
            e->limit = 0;
            e->op = 0;
        }
        return FP8_OK;
    });
}

/* ---- memory ---------------------------------------------------------------- */

FP8_API int32_t fp8_cuda_malloc(fp8_cuda_ctx_t c, int64_t nbytes, void **d_out) {
    static const char fn[] = "fp8_cuda_malloc";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(d_out, fn);
        *d_out = nullptr;
        FP8_REQUIRE(nbytes >= 0, fn, "nbytes must be >= 0, got %lld", (long long)nbytes);
        ENTER(fn, c, ctx);
        FP8_REQUIRE(!ctx->capturing, fn, "not allowed while capturing a graph");
        void *p = nullptr;
        size_t size = nbytes == 0 ? 1 : (size_t)nbytes;
        FP8_CUDA_TRY(fn, "cudaMallocFromPoolAsync", pool_alloc(ctx, &p, size));
        try {
            ctx->allocations.emplace(p, nbytes);
        } catch (...) {
            cudaFreeAsync(p, ctx->stream);
            throw;
        }
        ctx->live_bytes += nbytes;
        *d_out = p;
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_free(fp8_cuda_ctx_t c, void *d_ptr) {
    static const char fn[] = "fp8_cuda_free";
    return guard(fn, [&]() -> int32_t {
        if (d_ptr == NULL) return FP8_OK;
        ENTER(fn, c, ctx);
        FP8_REQUIRE(!ctx->capturing, fn, "not allowed while capturing a graph");
        auto it = ctx->allocations.find(d_ptr);
        FP8_REQUIRE(it != ctx->allocations.end(), fn,
                    "%p was not allocated by fp8_cuda_malloc on this context (or is freed)", d_ptr);
        FP8_CUDA_TRY(fn, "cudaFreeAsync", cudaFreeAsync(d_ptr, ctx->stream));
        ctx->live_bytes -= it->second;
        ctx->allocations.erase(it);
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_memory_stats(fp8_cuda_ctx_t c, int64_t *live_bytes, int64_t *live_allocs) {
    static const char fn[] = "fp8_cuda_memory_stats";
    FP8_REQUIRE(c != NULL, fn, "ctx is NULL");
    FP8_REQUIRE_PTR(live_bytes, fn);
    FP8_REQUIRE_PTR(live_allocs, fn);
    *live_bytes = unwrap(c)->live_bytes;
    *live_allocs = (int64_t)unwrap(c)->allocations.size();
    return FP8_OK;
}

static int32_t copy(const char *fn, fp8_cuda_ctx_t c, void *dst, const void *src, int64_t nbytes,
                    cudaMemcpyKind kind, bool wait) {
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE(nbytes >= 0, fn, "nbytes must be >= 0, got %lld", (long long)nbytes);
        FP8_REQUIRE_DATA(dst, nbytes, fn);
        FP8_REQUIRE_DATA(src, nbytes, fn);
        ENTER(fn, c, ctx);
        FP8_REQUIRE(!(wait && ctx->capturing), fn, "host copies are not allowed while capturing");
        if (nbytes == 0) return FP8_OK;
        FP8_CUDA_TRY(fn, "cudaMemcpyAsync",
                     cudaMemcpyAsync(dst, src, (size_t)nbytes, kind, ctx->stream));
        if (wait) FP8_CUDA_TRY(fn, "cudaStreamSynchronize", cudaStreamSynchronize(ctx->stream));
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_memcpy_h2d(fp8_cuda_ctx_t c, void *d_dst, const void *src, int64_t nbytes) {
    return copy("fp8_cuda_memcpy_h2d", c, d_dst, src, nbytes, cudaMemcpyHostToDevice, true);
}
/* Uploads larger than this go straight from pageable memory (and wait): staging
 * them would pin that much host memory per slot. */
static constexpr int64_t kStagingMaxBytes = 64ll << 20;

FP8_API int32_t fp8_cuda_memcpy_h2d_async(fp8_cuda_ctx_t c, void *d_dst, const void *src, int64_t nbytes) {
    static const char fn[] = "fp8_cuda_memcpy_h2d_async";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE(nbytes >= 0, fn, "nbytes must be >= 0, got %lld", (long long)nbytes);
        FP8_REQUIRE_DATA(d_dst, nbytes, fn);
        FP8_REQUIRE_DATA(src, nbytes, fn);
        ENTER(fn, c, ctx);
        FP8_REQUIRE(!ctx->capturing, fn, "host copies are not allowed while capturing");
        if (nbytes == 0) return FP8_OK;
        if (nbytes > kStagingMaxBytes) {
            FP8_CUDA_TRY(fn, "cudaMemcpyAsync", cudaMemcpyAsync(d_dst, src, (size_t)nbytes, cudaMemcpyHostToDevice, ctx->stream));
            FP8_CUDA_TRY(fn, "cudaStreamSynchronize", cudaStreamSynchronize(ctx->stream));
            return FP8_OK;
        }
        Ctx::Staging &s = ctx->staging[ctx->staging_next];
        ctx->staging_next = (ctx->staging_next + 1) % Ctx::kStagingSlots;
        if (s.done) {
            /* waits only while the copy that used this slot kStagingSlots uploads ago is still queued */
            FP8_CUDA_TRY(fn, "cudaEventSynchronize", cudaEventSynchronize(s.done));
        } else {
            FP8_CUDA_TRY(fn, "cudaEventCreate", cudaEventCreate(&s.done));
        }
        if (s.bytes < (size_t)nbytes) {
            if (s.host) cudaFreeHost(s.host);
            s.host = nullptr;
            s.bytes = 0;
            const size_t cap = ((size_t)nbytes + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1); /* whole MiB */
            FP8_CUDA_TRY(fn, "cudaHostAlloc", cudaHostAlloc(&s.host, cap, cudaHostAllocDefault));
            s.bytes = cap;
        }
        memcpy(s.host, src, (size_t)nbytes);
        FP8_CUDA_TRY(fn, "cudaMemcpyAsync", cudaMemcpyAsync(d_dst, s.host, (size_t)nbytes, cudaMemcpyHostToDevice, ctx->stream));
        FP8_CUDA_TRY(fn, "cudaEventRecord", cudaEventRecord(s.done, ctx->stream));
        return FP8_OK;
    });
}
FP8_API int32_t fp8_cuda_memcpy_d2h(fp8_cuda_ctx_t c, void *dst, const void *d_src, int64_t nbytes) {
    return copy("fp8_cuda_memcpy_d2h", c, dst, d_src, nbytes, cudaMemcpyDeviceToHost, true);
}
FP8_API int32_t fp8_cuda_memcpy_d2d(fp8_cuda_ctx_t c, void *d_dst, const void *d_src, int64_t nbytes) {
    return copy("fp8_cuda_memcpy_d2d", c, d_dst, d_src, nbytes, cudaMemcpyDeviceToDevice, false);
}

FP8_API int32_t fp8_cuda_memset(fp8_cuda_ctx_t c, void *d_dst, int32_t byte, int64_t nbytes) {
    static const char fn[] = "fp8_cuda_memset";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE(nbytes >= 0, fn, "nbytes must be >= 0, got %lld", (long long)nbytes);
        FP8_REQUIRE_DATA(d_dst, nbytes, fn);
        FP8_REQUIRE(byte >= 0 && byte <= 255, fn, "byte must be 0..255, got %d", (int)byte);
        ENTER(fn, c, ctx);
        if (nbytes == 0) return FP8_OK;
        FP8_CUDA_TRY(fn, "cudaMemsetAsync", cudaMemsetAsync(d_dst, byte, (size_t)nbytes, ctx->stream));
        return FP8_OK;
    });
}

/* ---- timing and graphs --------------------------------------------------------- */

FP8_API int32_t fp8_cuda_timer_start(fp8_cuda_ctx_t c) {
    static const char fn[] = "fp8_cuda_timer_start";
    return guard(fn, [&]() -> int32_t {
        ENTER(fn, c, ctx);
        /* An event recorded during capture is a graph node, and waiting on it
         * breaks the capture (issue 16). */
        FP8_REQUIRE(!ctx->capturing, fn, "timers are not allowed while capturing a graph (time the replays instead)");
        FP8_CUDA_TRY(fn, "cudaEventRecord", cudaEventRecord(ctx->timer_start, ctx->stream));
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_timer_stop(fp8_cuda_ctx_t c, float *ms) {
    static const char fn[] = "fp8_cuda_timer_stop";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(ms, fn);
        ENTER(fn, c, ctx);
        FP8_REQUIRE(!ctx->capturing, fn, "timers are not allowed while capturing a graph (time the replays instead)");
        FP8_CUDA_TRY(fn, "cudaEventRecord", cudaEventRecord(ctx->timer_stop, ctx->stream));
        FP8_CUDA_TRY(fn, "cudaEventSynchronize", cudaEventSynchronize(ctx->timer_stop));
        FP8_CUDA_TRY(fn, "cudaEventElapsedTime",
                     cudaEventElapsedTime(ms, ctx->timer_start, ctx->timer_stop));
        return FP8_OK;
    });
}

}  // extern "C"

struct fp8_cuda_graph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    int device = 0;
};

extern "C" {

FP8_API int32_t fp8_cuda_graph_begin(fp8_cuda_ctx_t c) {
    static const char fn[] = "fp8_cuda_graph_begin";
    return guard(fn, [&]() -> int32_t {
        ENTER(fn, c, ctx);
        FP8_REQUIRE(!ctx->capturing, fn, "already capturing");
        FP8_CUDA_TRY(fn, "cudaStreamBeginCapture",
                     cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal));
        ctx->capturing = true;
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_graph_end(fp8_cuda_ctx_t c, fp8_cuda_graph_t *out) {
    static const char fn[] = "fp8_cuda_graph_end";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE_PTR(out, fn);
        *out = nullptr;
        ENTER(fn, c, ctx);
        FP8_REQUIRE(ctx->capturing, fn, "fp8_cuda_graph_begin was not called");
        ctx->capturing = false;
        cudaGraph_t graph = nullptr;
        FP8_CUDA_TRY(fn, "cudaStreamEndCapture", cudaStreamEndCapture(ctx->stream, &graph));
        cudaGraphExec_t exec = nullptr;
        cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
        if (e != cudaSuccess) {
            cudaGraphDestroy(graph);
            return cuda_fail(fn, "cudaGraphInstantiate", e);
        }
        fp8_cuda_graph *g = new fp8_cuda_graph();
        g->graph = graph;
        g->exec = exec;
        g->device = ctx->device;
        *out = g;
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_graph_launch(fp8_cuda_ctx_t c, fp8_cuda_graph_t graph) {
    static const char fn[] = "fp8_cuda_graph_launch";
    return guard(fn, [&]() -> int32_t {
        FP8_REQUIRE(graph != NULL, fn, "graph is NULL");
        ENTER(fn, c, ctx);
        FP8_REQUIRE(graph->device == ctx->device, fn, "graph was captured on device %d, ctx is on %d",
                    graph->device, ctx->device);
        FP8_CUDA_TRY(fn, "cudaGraphLaunch", cudaGraphLaunch(graph->exec, ctx->stream));
        return FP8_OK;
    });
}

FP8_API int32_t fp8_cuda_graph_destroy(fp8_cuda_graph_t graph) {
    static const char fn[] = "fp8_cuda_graph_destroy";
    if (graph == NULL) return FP8_OK;
    return guard(fn, [&]() -> int32_t {
        cudaGraphExecDestroy(graph->exec);
        cudaGraphDestroy(graph->graph);
        delete graph;
        return FP8_OK;
    });
}

}  // extern "C"
