/*
 * faults_test.cpp — the error paths: each CUDA, cuBLASLt or CUB call an entry
 * point makes is made to fail (fp8_cuda_emu_fail_call), and the entry point
 * must return the mapped status (out of memory, unsupported, backend) with a
 * message naming the call, release what it had taken, and leave the context
 * usable for the next call.
 */
#include "harness.h"

namespace harness {

namespace {

/* cudaError_t / cublasStatus_t values the emulator returns on request */
constexpr int kCudaInvalidValue = 1, kCudaOutOfMemory = 2, kCudaInsufficientDriver = 35, kCudaNoDevice = 100,
              kCudaInvalidDevice = 101, kCudaNoKernelImage = 209, kCudaLaunchFailure = 719;
constexpr int kCublasAllocFailed = 3, kCublasInvalidValue = 7, kCublasExecutionFailed = 13, kCublasNotSupported = 15;

/* Arms one failure, runs body, and checks that the failure was consumed. */
template <class F>
void failing(const char *call, int skip, int error, F &&body) {
    CHECK(fp8_cuda_emu_fail_call(call, skip, error) == FP8_OK, "fp8_cuda_emu_fail_call(%s)", call);
    body();
    int64_t pending = 0;
    fp8_cuda_emu_take_pending_failures(&pending);
    CHECK(pending == 0, "the path never made call %s (after %d others)", call, skip);
}

void probe_failures() {
    section("faults: probe");
    int32_t state = -1, count = -1;
    failing("cudaDriverGetVersion", 0, kCudaInsufficientDriver, [&] {
        CUDA_OK(fp8_cuda_probe(&state, &count, nullptr, nullptr));
        CHECK(state == FP8_CUDA_NO_DRIVER && count == 0, "no driver: state %d count %d", state, count);
        CHECK(strstr(fp8_cuda_last_error(), "no NVIDIA driver"), "no driver: %s", fp8_cuda_last_error());
    });
    failing("cudaGetDeviceCount", 0, kCudaInsufficientDriver, [&] {
        CUDA_OK(fp8_cuda_probe(&state, &count, nullptr, nullptr));
        CHECK(state == FP8_CUDA_DRIVER_TOO_OLD, "old driver: state %d", state);
        CHECK(strstr(fp8_cuda_last_error(), "older than"), "old driver: %s", fp8_cuda_last_error());
    });
    failing("cudaGetDeviceCount", 0, kCudaNoDevice, [&] {
        CUDA_OK(fp8_cuda_probe(&state, &count, nullptr, nullptr));
        CHECK(state == FP8_CUDA_NO_DEVICE, "no device: state %d", state);
    });
    failing("cudaGetDeviceCount", 0, kCudaInvalidValue, [&] {
        CUDA_OK(fp8_cuda_probe(&state, &count, nullptr, nullptr));
        CHECK(state == FP8_CUDA_ERROR && strstr(fp8_cuda_last_error(), "cudaGetDeviceCount"), "other error: state %d, %s",
              state, fp8_cuda_last_error());
    });
    CUDA_OK(fp8_cuda_probe(&state, &count, nullptr, nullptr));
    CHECK(state == FP8_CUDA_READY, "the probe after the failures: state %d", state);
    failing("cudaGetDeviceProperties", 0, kCudaInvalidValue, [&] {
        CUDA_FAILS(FP8_ERR_BACKEND, "cudaGetDeviceProperties",
                   fp8_cuda_device_info(0, nullptr, nullptr, nullptr, nullptr, nullptr, 0));
    });
}

void context_failures() {
    section("faults: ctx_create");
    struct Case {
        const char *call;
        int skip, error;
        int32_t status;
        const char *needle;
    };
    const Case cases[] = {
        {"cudaGetDeviceProperties", 0, kCudaInvalidValue, FP8_ERR_BACKEND, "cudaGetDeviceProperties"},
        {"cudaSetDevice", 0, kCudaInvalidDevice, FP8_ERR_UNSUPPORTED, "cudaSetDevice"},
        {"cudaStreamCreateWithFlags", 0, kCudaOutOfMemory, FP8_ERR_OUT_OF_MEMORY, "cudaStreamCreateWithFlags"},
        {"cublasLtCreate", 0, kCublasAllocFailed, FP8_ERR_OUT_OF_MEMORY, "cublasLtCreate"},
        {"cudaMalloc", 0, kCudaOutOfMemory, FP8_ERR_OUT_OF_MEMORY, "cudaMalloc(workspace)"},
        {"cudaMalloc", 1, kCudaOutOfMemory, FP8_ERR_OUT_OF_MEMORY, "cudaMalloc(scratch)"},
        {"cudaMemsetAsync", 0, kCudaInvalidValue, FP8_ERR_BACKEND, "cudaMemsetAsync(scratch)"},
        {"cudaEventCreate", 0, kCudaOutOfMemory, FP8_ERR_OUT_OF_MEMORY, "cudaEventCreate"},
        {"cudaEventCreate", 1, kCudaInvalidValue, FP8_ERR_BACKEND, "cudaEventCreate"},
        {"cudaMemPoolCreate", 0, kCudaOutOfMemory, FP8_ERR_OUT_OF_MEMORY, "cudaMemPoolCreate"},
        {"cudaMemPoolSetAttribute", 0, kCudaInvalidValue, FP8_ERR_BACKEND, "cudaMemPoolSetAttribute"},
    };
    for (const auto &c : cases) {
        MemoryWatch watch;
        fp8_cuda_ctx_t c2 = (fp8_cuda_ctx_t)&c; /* must come back NULL */
        failing(c.call, c.skip, c.error, [&] { CUDA_FAILS(c.status, c.needle, fp8_cuda_ctx_create(0, &c2)); });
        CHECK(c2 == nullptr, "ctx_create failing in %s left a context", c.call);
        watch.check(c.call);
    }
    /* every entry point makes its device current first */
    failing("cudaGetDevice", 0, kCudaInvalidValue, [] { CUDA_FAILS(FP8_ERR_BACKEND, "cudaGetDevice", fp8_cuda_synchronize(ctx)); });
}

void memory_failures() {
    section("faults: memory and copies");
    MemoryWatch watch;
    void *p = nullptr;
    int64_t bytes0, allocs0, bytes, allocs;
    CUDA_OK(fp8_cuda_memory_stats(ctx, &bytes0, &allocs0));
    failing("cudaMallocAsync", 0, kCudaOutOfMemory, [&] {
        CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cudaMallocFromPoolAsync", fp8_cuda_malloc(ctx, 100, &p));
    });
    CUDA_OK(fp8_cuda_memory_stats(ctx, &bytes, &allocs));
    CHECK(p == nullptr && bytes == bytes0 && allocs == allocs0, "a failed malloc changed the statistics");
    CUDA_OK(fp8_cuda_malloc(ctx, 100, &p));
    uint8_t host[100] = {0};
    failing("cudaMemcpyAsync", 0, kCudaInvalidValue, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "cudaMemcpyAsync", fp8_cuda_memcpy_h2d(ctx, p, host, 100)); });
    failing("cudaStreamSynchronize", 0, kCudaLaunchFailure, [&] {
        CUDA_FAILS(FP8_ERR_BACKEND, "cudaStreamSynchronize", fp8_cuda_memcpy_d2h(ctx, host, p, 100));
    });
    failing("cudaMemsetAsync", 0, kCudaInvalidValue, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "cudaMemsetAsync", fp8_cuda_memset(ctx, p, 0, 100)); });
    failing("cudaStreamSynchronize", 0, kCudaLaunchFailure, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "cudaStreamSynchronize", fp8_cuda_synchronize(ctx)); });
    failing("cudaEventRecord", 0, kCudaInvalidValue, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "cudaEventRecord", fp8_cuda_timer_start(ctx)); });
    float ms;
    CUDA_OK(fp8_cuda_timer_start(ctx));
    failing("cudaEventRecord", 0, kCudaInvalidValue, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "cudaEventRecord", fp8_cuda_timer_stop(ctx, &ms)); });
    /* copies inside kernels' entry points: convert between equal dtypes, a reduction that keeps every dim */
    float f[4] = {1, 2, 3, 4}, g[4];
    int64_t d[1] = {4};
    failing("cudaMemcpyAsync", 0, kCudaInvalidValue, [&] {
        CUDA_FAILS(FP8_ERR_BACKEND, "cudaMemcpyAsync", fp8_cuda_convert(ctx, g, FP8_DTYPE_F32, f, FP8_DTYPE_F32, 4));
    });
    failing("cudaMemcpyAsync", 0, kCudaInvalidValue, [&] {
        CUDA_FAILS(FP8_ERR_BACKEND, "cudaMemcpyAsync", fp8_cuda_reduce(ctx, g, d, f, d, FP8_DTYPE_F32, 1, FP8_REDUCE_SUM));
    });
    CUDA_OK(fp8_cuda_free(ctx, p));
    watch.check("memory failures");
}

void launch_failures() {
    section("faults: launches");
    const int64_t n = 100;
    Buf x(FP8_DTYPE_F32, n), q(FP8_DTYPE_E4M3FN, n), ref(FP8_DTYPE_E4M3FN, n), s(FP8_DTYPE_F32, 1);
    fill_random(x);
    s.set(0, 2.0f);
    failing("launch", 0, kCudaLaunchFailure, [&] {
        CUDA_FAILS(FP8_ERR_BACKEND, "launch of quantize_kernel",
                   fp8_cuda_quantize(ctx, q.p(), FP8_DTYPE_E4M3FN, x.p(), FP8_DTYPE_F32, n, s.as<float>()));
    });
    failing("launch", 0, kCudaNoKernelImage, [&] {
        CUDA_FAILS(FP8_ERR_UNSUPPORTED, "sm_90", fp8_cuda_amax(ctx, s.as<float>(), x.p(), FP8_DTYPE_F32, n));
    });
    /* the failure is not reported again by the next launch */
    s.set(0, 2.0f);
    CUDA_OK(fp8_cuda_quantize(ctx, q.p(), FP8_DTYPE_E4M3FN, x.p(), FP8_DTYPE_F32, n, s.as<float>()));
    CPU_OK(fp8_cpu_quantize(ref.p(), FP8_DTYPE_E4M3FN, x.p(), FP8_DTYPE_F32, n, s.as<float>()));
    same_bytes("quantize after a failed launch", q, ref);
    /* the second launch of a two-kernel call */
    Buf dy(FP8_DTYPE_F32, 10000 * 4), db(FP8_DTYPE_F32, 4);
    fill_random(dy);
    failing("launch", 1, kCudaLaunchFailure, [&] {
        CUDA_FAILS(FP8_ERR_BACKEND, "launch of sum_slices_kernel", fp8_cuda_bias_grad(ctx, db.p(), 0, dy.p(), 0, 10000, 4));
    });
}

void temporary_failures() {
    section("faults: temporaries");
    MemoryWatch watch;
    const int64_t rows = 50, cols = 7;
    Buf x(FP8_DTYPE_F32, rows * cols), logp(FP8_DTYPE_F32, rows * cols), loss(FP8_DTYPE_F32, 1), dx(FP8_DTYPE_F32, rows * cols);
    std::vector<int32_t> t((size_t)rows, 2);
    fill_random(x);
    loss.set(0, 1.0f);
    with_device_shape(4, 0, [&] { /* no workspace: every temporary is allocated */
        failing("cudaMallocAsync", 0, kCudaOutOfMemory, [&] {
            CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cudaMallocFromPoolAsync",
                       fp8_cuda_cross_entropy(ctx, loss.as<float>(), logp.p(), x.p(), t.data(), FP8_DTYPE_F32, rows, cols, -1));
        });
        failing("cudaMallocAsync", 0, kCudaOutOfMemory, [&] {
            CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cudaMallocFromPoolAsync",
                       fp8_cuda_cross_entropy_backward(ctx, dx.p(), logp.p(), t.data(), loss.as<float>(), FP8_DTYPE_F32, rows,
                                                       cols, -1));
        });
        failing("launch", 0, kCudaLaunchFailure, [&] {
            CUDA_FAILS(FP8_ERR_BACKEND, "cross_entropy_kernel",
                       fp8_cuda_cross_entropy(ctx, loss.as<float>(), logp.p(), x.p(), t.data(), FP8_DTYPE_F32, rows, cols, -1));
        });
        Buf w(FP8_DTYPE_F32, 10 * cols);
        std::vector<int32_t> idx((size_t)rows, 3);
        failing("cudaMallocAsync", 0, kCudaOutOfMemory, [&] {
            CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cudaMallocFromPoolAsync",
                       fp8_cuda_embedding_backward(ctx, w.p(), x.p(), idx.data(), FP8_DTYPE_F32, rows, 10, cols));
        });
    });
    Buf w(FP8_DTYPE_F32, 10 * cols);
    std::vector<int32_t> idx((size_t)rows, 3);
    failing("cub::DeviceRadixSort::SortPairs", 0, kCudaInvalidValue, [&] {
        CUDA_FAILS(FP8_ERR_BACKEND, "size query", fp8_cuda_embedding_backward(ctx, w.p(), x.p(), idx.data(), FP8_DTYPE_F32, rows, 10, cols));
    });
    failing("cub::DeviceRadixSort::SortPairs", 1, kCudaInvalidValue, [&] {
        CUDA_FAILS(FP8_ERR_BACKEND, "SortPairs", fp8_cuda_embedding_backward(ctx, w.p(), x.p(), idx.data(), FP8_DTYPE_F32, rows, 10, cols));
    });
    watch.check("failed temporaries");
}

void gemm_failures() {
    section("faults: gemm");
    MemoryWatch watch;
    int64_t M = 100; /* a new M per case: a new plan, so the plan is built again */
    const int64_t K = 32, N = 16;
    Buf a(FP8_DTYPE_E4M3FN, 200 * K), b(FP8_DTYPE_E4M3FN, N * K), c(FP8_DTYPE_BF16, 200 * N), s(FP8_DTYPE_F32, 200);
    for (int64_t i = 0; i < 200; i++) s.set(i, 1.0f);
    a.fill_bytes(0x38);
    b.fill_bytes(0x38);
    const int32_t e4 = FP8_DTYPE_E4M3FN;
    auto scaled = [&]() {
        return fp8_cuda_scaled_mm(ctx, c.p(), FP8_DTYPE_BF16, a.p(), e4, b.p(), e4, s.as<float>(), s.as<float>(), nullptr, 0, M,
                                  K, N, 0);
    };
    failing("cublasLtMatmul", 0, kCublasExecutionFailed, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "cublasLtMatmul", scaled()); });
    M++;
    failing("cublasLtMatmulAlgoGetHeuristic", 0, kCublasNotSupported, [&] { CUDA_FAILS(FP8_ERR_UNSUPPORTED, "no algorithm", scaled()); });
    M++;
    failing("cublasLtMatmulAlgoGetHeuristic", 0, kCublasInvalidValue,
            [&] { CUDA_FAILS(FP8_ERR_BACKEND, "cublasLtMatmulAlgoGetHeuristic", scaled()); });
    M++;
    failing("cublasLtMatrixLayoutCreate", 1, kCublasAllocFailed, [&] { CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cublasLtMatrixLayoutCreate", scaled()); });
    M++;
    failing("cublasLtMatmulDescCreate", 0, kCublasAllocFailed, [&] { CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cublasLtMatmulDescCreate", scaled()); });
    M++;
    failing("cublasLtMatmulDescSetAttribute", 0, kCublasInvalidValue, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "TRANSA", scaled()); });
    M++;
    failing("launch", 0, kCudaLaunchFailure, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "inverse_scales_kernel", scaled()); });
    M++;
    CUDA_OK(scaled());

    /* row-wise: a cuBLASLt that rejects the scale-mode attribute has no outer-vector
     * algorithm, so AUTO falls back to the epilogue; temporaries that cannot be had */
    auto rowwise = [&]() {
        return fp8_cuda_scaled_mm_rowwise(ctx, c.p(), FP8_DTYPE_BF16, a.p(), e4, b.p(), e4, s.as<float>(), s.as<float>(), nullptr, 0,
                                          M, K, N, 0);
    };
    failing("cublasLtMatmulDescSetAttribute", 3, kCublasInvalidValue, [&] { CUDA_OK(rowwise()); });
    M++;
    failing("cudaMallocAsync", 0, kCudaOutOfMemory, [&] { CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cudaMallocFromPoolAsync", rowwise()); });
    CUDA_OK(fp8_cuda_set_rowwise_gemm(ctx, FP8_CUDA_ROWWISE_EPILOGUE));
    failing("cudaMallocAsync", 0, kCudaOutOfMemory, [&] { CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cudaMallocFromPoolAsync", rowwise()); });
    failing("launch", 0, kCudaLaunchFailure, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "rowwise_epilogue_kernel", rowwise()); });
    CUDA_OK(fp8_cuda_set_rowwise_gemm(ctx, FP8_CUDA_ROWWISE_AUTO));
    failing("launch", 0, kCudaLaunchFailure, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "inverse_vectors_kernel", rowwise()); });
    watch.check("failed GEMMs");
}

void graph_failures() {
    section("faults: graphs");
    MemoryWatch watch;
    failing("cudaStreamBeginCapture", 0, kCudaInvalidValue, [] { CUDA_FAILS(FP8_ERR_BACKEND, "cudaStreamBeginCapture", fp8_cuda_graph_begin(ctx)); });
    CUDA_OK(fp8_cuda_synchronize(ctx)); /* not capturing */
    fp8_cuda_graph_t g = nullptr;
    CUDA_OK(fp8_cuda_graph_begin(ctx));
    failing("cudaGraphInstantiate", 0, kCudaOutOfMemory, [&] { CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cudaGraphInstantiate", fp8_cuda_graph_end(ctx, &g)); });
    CHECK(g == nullptr, "a failed graph_end returned a graph");
    CUDA_OK(fp8_cuda_synchronize(ctx)); /* capture ended */
    CUDA_OK(fp8_cuda_graph_begin(ctx));
    CUDA_OK(fp8_cuda_graph_end(ctx, &g));
    failing("cudaGraphLaunch", 0, kCudaLaunchFailure, [&] { CUDA_FAILS(FP8_ERR_BACKEND, "cudaGraphLaunch", fp8_cuda_graph_launch(ctx, g)); });
    CUDA_OK(fp8_cuda_graph_launch(ctx, g));
    CUDA_OK(fp8_cuda_graph_destroy(g));
    watch.check("failed graphs");
}

}  // namespace

void test_faults() {
    probe_failures();
    context_failures();
    memory_failures();
    launch_failures();
    temporary_failures();
    gemm_failures();
    graph_failures();
}

}  // namespace harness
