/*
 * context_test.cpp — context.cu: probe, device info, contexts, device memory,
 * copies, timers and graph capture on the emulated device.
 */
#include "harness.h"

namespace harness {

namespace {

void probe_and_devices() {
    section("context: probe");
    int32_t state = -1, count = -1, drv = 0, rt = 0;
    CUDA_OK(fp8_cuda_probe(&state, &count, &drv, &rt));
    CHECK(state == FP8_CUDA_READY && count == 1 && drv > 0 && rt > 0, "probe: state %d, %d devices, driver %d, runtime %d",
          state, count, drv, rt);
    CUDA_OK(fp8_cuda_probe(nullptr, nullptr, nullptr, nullptr));

    int32_t major = 0, minor = -1, sms = 0;
    int64_t mem = 0;
    char name[64] = "";
    CUDA_OK(fp8_cuda_device_info(0, &major, &minor, &sms, &mem, name, sizeof name));
    CHECK(major == 9 && minor == 0 && sms == 4 && mem > 0 && strstr(name, "emulated"), "device_info: %d.%d, %d SMs, %s",
          major, minor, sms, name);
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "out of range", fp8_cuda_device_info(1, nullptr, nullptr, nullptr, nullptr, nullptr, 0));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "name_cap", fp8_cuda_device_info(0, nullptr, nullptr, nullptr, nullptr, name, 0));

    fp8_cuda_ctx_t c = nullptr;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "out", fp8_cuda_ctx_create(0, nullptr));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "out of range", fp8_cuda_ctx_create(3, &c));
    CHECK(c == nullptr, "a failed ctx_create left a context");

    /* A machine without GPUs, and one below Hopper. */
    fp8_cuda_emu_configure(0, 4, 9);
    CUDA_OK(fp8_cuda_probe(&state, &count, nullptr, nullptr));
    CHECK(state == FP8_CUDA_NO_DEVICE && count == 0, "probe without GPUs: state %d, %d devices", state, count);
    CHECK(strstr(fp8_cuda_last_error(), "no GPU") != nullptr, "probe without GPUs says: %s", fp8_cuda_last_error());
    CUDA_FAILS(FP8_ERR_UNSUPPORTED, "CUDA unavailable", fp8_cuda_ctx_create(0, &c));
    CUDA_FAILS(FP8_ERR_UNSUPPORTED, "cudaErrorNoDevice", fp8_cuda_device_info(0, nullptr, nullptr, nullptr, nullptr, nullptr, 0));
    fp8_cuda_emu_configure(1, 4, 8);
    CUDA_FAILS(FP8_ERR_UNSUPPORTED, "compute capability 8.0", fp8_cuda_ctx_create(0, &c));
    fp8_cuda_emu_configure(1, 4, 9);
    CHECK(c == nullptr, "a refused ctx_create left a context");
}

void context_basics() {
    section("context: handles");
    void *stream = nullptr;
    CUDA_OK(fp8_cuda_ctx_stream(ctx, &stream));
    CHECK(stream != nullptr, "the context has no stream");
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ctx is NULL", fp8_cuda_ctx_stream(nullptr, &stream));
    int64_t plans = -1;
    CUDA_OK(fp8_cuda_gemm_plans(ctx, &plans));
    CHECK(plans >= 0, "gemm_plans %lld", (long long)plans);
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "kernel must be", fp8_cuda_set_cast_kernel(ctx, 2));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ctx is NULL", fp8_cuda_set_cast_kernel(nullptr, 0));
    CUDA_OK(fp8_cuda_synchronize(ctx));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ctx is NULL", fp8_cuda_synchronize(nullptr));
    CUDA_OK(fp8_cuda_ctx_destroy(nullptr));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "path must be", fp8_cuda_set_rowwise_gemm(ctx, 3));

    /* A second context, destroyed with memory still allocated: it frees it. */
    MemoryWatch watch;
    fp8_cuda_ctx_t c2 = nullptr;
    CUDA_OK(fp8_cuda_ctx_create(0, &c2));
    void *p = nullptr;
    CUDA_OK(fp8_cuda_malloc(c2, 1000, &p));
    CUDA_OK(fp8_cuda_ctx_destroy(c2));
    watch.check("ctx_destroy with a live allocation");
}

void memory_and_copies() {
    section("context: memory");
    MemoryWatch watch;
    int64_t bytes0, allocs0;
    CUDA_OK(fp8_cuda_memory_stats(ctx, &bytes0, &allocs0));
    void *a = nullptr, *b = nullptr, *z1 = nullptr, *z2 = nullptr;
    CUDA_OK(fp8_cuda_malloc(ctx, 4096, &a));
    CUDA_OK(fp8_cuda_malloc(ctx, 4096, &b));
    CUDA_OK(fp8_cuda_malloc(ctx, 0, &z1));
    CUDA_OK(fp8_cuda_malloc(ctx, 0, &z2));
    CHECK(a && b && z1 && z2 && z1 != z2, "malloc: zero-byte allocations must be valid and distinct");
    CHECK(((uintptr_t)a & 255) == 0, "malloc: %p is not 256-byte aligned", a);
    int64_t bytes, allocs;
    CUDA_OK(fp8_cuda_memory_stats(ctx, &bytes, &allocs));
    CHECK(bytes == bytes0 + 8192 && allocs == allocs0 + 4, "memory_stats: %lld bytes in %lld blocks", (long long)bytes,
          (long long)allocs);

    std::vector<uint8_t> host(4096), back(4096, 0);
    for (size_t i = 0; i < host.size(); i++) host[i] = (uint8_t)(i * 7 + 1);
    CUDA_OK(fp8_cuda_memcpy_h2d(ctx, a, host.data(), 4096));
    CUDA_OK(fp8_cuda_memcpy_d2d(ctx, b, a, 4096));
    CUDA_OK(fp8_cuda_memset(ctx, b, 0x11, 100));
    CUDA_OK(fp8_cuda_memcpy_d2h(ctx, back.data(), b, 4096));
    bool ok = true;
    for (size_t i = 0; i < 4096; i++) ok &= back[i] == (i < 100 ? 0x11 : host[i]);
    CHECK(ok, "h2d, d2d, memset, d2h do not round-trip");
    CUDA_OK(fp8_cuda_memcpy_h2d(ctx, nullptr, nullptr, 0));

    /* asynchronous uploads through the staging ring: more uploads than slots, growing sizes,
     * and the host buffer overwritten right after each call (the copy must not read it later) */
    {
        std::vector<void *> dsts;
        std::vector<std::vector<uint8_t>> want;
        std::vector<uint8_t> src;
        for (int k = 0; k < 9; k++) {
            const size_t n = 1000 + (size_t)k * 300000; /* past 1 MiB: slots grow */
            void *d = nullptr;
            CUDA_OK(fp8_cuda_malloc(ctx, (int64_t)n, &d));
            src.assign(n, 0);
            for (size_t i = 0; i < n; i++) src[i] = (uint8_t)(i * 13 + k * 7);
            CUDA_OK(fp8_cuda_memcpy_h2d_async(ctx, d, src.data(), (int64_t)n));
            want.push_back(src);
            std::fill(src.begin(), src.end(), 0xEE);
            dsts.push_back(d);
        }
        bool same = true;
        for (size_t k = 0; k < dsts.size(); k++) {
            std::vector<uint8_t> got(want[k].size());
            CUDA_OK(fp8_cuda_memcpy_d2h(ctx, got.data(), dsts[k], (int64_t)got.size()));
            same &= got == want[k];
            CUDA_OK(fp8_cuda_free(ctx, dsts[k]));
        }
        CHECK(same, "h2d_async: uploads through the staging ring do not round-trip");
        CUDA_OK(fp8_cuda_memcpy_h2d_async(ctx, nullptr, nullptr, 0));
        CUDA_FAILS(FP8_ERR_INVALID_ARG, "nbytes must be >= 0", fp8_cuda_memcpy_h2d_async(ctx, a, host.data(), -1));
        CUDA_FAILS(FP8_ERR_INVALID_ARG, "is NULL", fp8_cuda_memcpy_h2d_async(ctx, a, nullptr, 4));
    }
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "nbytes must be >= 0", fp8_cuda_memcpy_d2h(ctx, back.data(), a, -1));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "is NULL", fp8_cuda_memcpy_d2d(ctx, nullptr, a, 4));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "byte must be", fp8_cuda_memset(ctx, a, 256, 4));
    void *unused = nullptr;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "nbytes must be >= 0", fp8_cuda_malloc(ctx, -1, &unused));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "d_out", fp8_cuda_malloc(ctx, 1, nullptr));

    CUDA_OK(fp8_cuda_free(ctx, a));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "was not allocated", fp8_cuda_free(ctx, a));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "was not allocated", fp8_cuda_free(ctx, host.data()));
    CUDA_OK(fp8_cuda_free(ctx, nullptr));
    CUDA_OK(fp8_cuda_free(ctx, b));
    CUDA_OK(fp8_cuda_free(ctx, z1));
    CUDA_OK(fp8_cuda_free(ctx, z2));
    CUDA_OK(fp8_cuda_memory_stats(ctx, &bytes, &allocs));
    CHECK(bytes == bytes0 && allocs == allocs0, "memory_stats after free: %lld bytes in %lld blocks", (long long)bytes,
          (long long)allocs);
    watch.check("malloc / free");

    float ms = -1.0f;
    CUDA_OK(fp8_cuda_timer_start(ctx));
    CUDA_OK(fp8_cuda_timer_stop(ctx, &ms));
    CHECK(ms >= 0.0f, "timer: %g ms", ms);
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "ms", fp8_cuda_timer_stop(ctx, nullptr));
}

/* A captured quantize replays with the inputs' current contents; capture
 * refuses what may not be captured. */
void graphs() {
    section("context: graphs");
    MemoryWatch watch;
    const int64_t n = 1000;
    Buf x(FP8_DTYPE_F32, n), q(FP8_DTYPE_E4M3FN, n), ref(FP8_DTYPE_E4M3FN, n), amax(FP8_DTYPE_F32, 1),
        scale(FP8_DTYPE_F32, 1);
    fill_random(x, 3.0f);
    fp8_cuda_graph_t g = nullptr;
    CUDA_OK(fp8_cuda_graph_begin(ctx));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "already capturing", fp8_cuda_graph_begin(ctx));
    CUDA_OK(fp8_cuda_amax_to_scale(ctx, amax.as<float>(), scale.as<float>(), x.p(), FP8_DTYPE_F32, n, FP8_DTYPE_E4M3FN, 0));
    CUDA_OK(fp8_cuda_quantize(ctx, q.p(), FP8_DTYPE_E4M3FN, x.p(), FP8_DTYPE_F32, n, scale.as<float>()));
    /* a temporary allocated while capturing (cross entropy's row buffer is
     * bigger than a shrunk workspace) lives with the graph */
    Buf logits(FP8_DTYPE_F32, 2000 * 3), logp(FP8_DTYPE_F32, 2000 * 3), loss(FP8_DTYPE_F32, 1);
    std::vector<int32_t> targets(2000, 1);
    fill_random(logits);
    with_device_shape(4, 64, [&] {
        CUDA_OK(fp8_cuda_cross_entropy(ctx, loss.as<float>(), logp.p(), logits.p(), targets.data(), FP8_DTYPE_F32, 2000, 3,
                                       -100));
    });
    void *p = nullptr;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "capturing", fp8_cuda_malloc(ctx, 16, &p));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "capturing", fp8_cuda_synchronize(ctx));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "capturing", fp8_cuda_memcpy_h2d(ctx, q.p(), x.p(), 4));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "capturing", fp8_cuda_memcpy_h2d_async(ctx, q.p(), x.p(), 4));
    q.fill_bytes(0);
    CUDA_OK(fp8_cuda_graph_end(ctx, &g));
    CHECK(q.as<uint8_t>()[0] == 0 && q.as<uint8_t>()[n - 1] == 0, "a captured quantize ran while capturing");
    fp8_cuda_graph_t g2 = nullptr;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "was not called", fp8_cuda_graph_end(ctx, &g2));

    for (int round = 0; round < 2; round++) {
        fill_random(x, round ? 100.0f : 0.01f);
        CUDA_OK(fp8_cuda_graph_launch(ctx, g));
        float cpu_amax, cpu_scale;
        CPU_OK(fp8_cpu_amax_to_scale(&cpu_amax, &cpu_scale, x.p(), FP8_DTYPE_F32, n, FP8_DTYPE_E4M3FN, 0));
        CPU_OK(fp8_cpu_quantize(ref.p(), FP8_DTYPE_E4M3FN, x.p(), FP8_DTYPE_F32, n, &cpu_scale));
        CHECK(amax.get(0) == cpu_amax && scale.get(0) == cpu_scale, "graph replay %d: amax %g scale %g, cpu %g %g", round,
              amax.get(0), scale.get(0), cpu_amax, cpu_scale);
        same_bytes("graph replay of quantize", q, ref);
    }
    float cpu_loss;
    Buf ref_logp(FP8_DTYPE_F32, 2000 * 3);
    CPU_OK(fp8_cpu_cross_entropy(&cpu_loss, ref_logp.p(), logits.p(), targets.data(), FP8_DTYPE_F32, 2000, 3, -100));
    CHECK(std::fabs(loss.get(0) - cpu_loss) <= 1e-6f * std::fabs(cpu_loss), "graph replay of cross entropy: %g, cpu %g",
          loss.get(0), cpu_loss);
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "graph is NULL", fp8_cuda_graph_launch(ctx, nullptr));
    CUDA_OK(fp8_cuda_graph_destroy(g));
    CUDA_OK(fp8_cuda_graph_destroy(nullptr));
    watch.check("graph capture with a temporary");
}

}  // namespace

/* The first reduction on a new context: its scratch (amax bits, block counter)
 * must be zeroed on the context's own stream. The emulator runs legacy-stream
 * work (cudaMemset) only when something waits for it, which a non-blocking
 * stream never does, so a cudaMemset here would leave the counter unzeroed
 * (issue 16). Twice: a fresh context, then a second one at once. */
void fresh_context_scratch() {
    section("context: scratch of a new context");
    Buf x(FP8_DTYPE_F32, 1 << 16), cpu(FP8_DTYPE_F32, 1);
    fill_random(x, 3.0f);
    CPU_OK(fp8_cpu_amax(cpu.as<float>(), x.p(), FP8_DTYPE_F32, x.n()));
    for (int k = 0; k < 2; k++) {
        fp8_cuda_ctx_t c2 = nullptr;
        CUDA_OK(fp8_cuda_ctx_create(0, &c2));
        Buf amax(FP8_DTYPE_F32, 1);
        amax.set(0, -1.0f);
        CUDA_OK(fp8_cuda_amax(c2, amax.as<float>(), x.p(), FP8_DTYPE_F32, x.n()));
        CUDA_OK(fp8_cuda_synchronize(c2));
        same_bytes("amax as the first launch on a new context", amax, cpu);
        CUDA_OK(fp8_cuda_ctx_destroy(c2));
    }
}

/* The context allocates from its own pool and leaves the device's default pool
 * (NCCL's, other libraries') as it found it (issue 16). */
void own_memory_pool() {
    section("context: memory pool");
    int64_t pools0 = -1, pools1 = -1, pools2 = -1;
    uint64_t threshold = 1;
    fp8_cuda_emu_pools(&pools0, &threshold);
    CHECK(threshold == 0, "the default pool's release threshold was changed to %llu", (unsigned long long)threshold);
    fp8_cuda_ctx_t c2 = nullptr;
    CUDA_OK(fp8_cuda_ctx_create(0, &c2));
    void *p = nullptr;
    CUDA_OK(fp8_cuda_malloc(c2, 1 << 20, &p));
    CUDA_OK(fp8_cuda_free(c2, p));
    fp8_cuda_emu_pools(&pools1, &threshold);
    CHECK(pools1 == pools0 + 1 && threshold == 0, "a context: %lld -> %lld pools, default threshold %llu",
          (long long)pools0, (long long)pools1, (unsigned long long)threshold);
    CUDA_OK(fp8_cuda_ctx_destroy(c2));
    fp8_cuda_emu_pools(&pools2, nullptr);
    CHECK(pools2 == pools0, "ctx_destroy left its pool: %lld pools, %lld before", (long long)pools2, (long long)pools0);
    /* a failed pool creation fails ctx_create cleanly */
    MemoryWatch watch;
    fp8_cuda_emu_fail_call("cudaMemPoolCreate", 0, (int32_t)cudaErrorMemoryAllocation);
    c2 = nullptr;
    CUDA_FAILS(FP8_ERR_OUT_OF_MEMORY, "cudaMemPoolCreate", fp8_cuda_ctx_create(0, &c2));
    CHECK(c2 == nullptr, "a failed ctx_create left a context");
    watch.check("ctx_create failing at cudaMemPoolCreate");
}

/* Timers are refused while capturing: the event would be a graph node, and
 * waiting on it (timer_stop) would break the capture (issue 16). */
void timers_during_capture() {
    section("context: timers during capture");
    CUDA_OK(fp8_cuda_graph_begin(ctx));
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "while capturing", fp8_cuda_timer_start(ctx));
    float ms = 0;
    CUDA_FAILS(FP8_ERR_INVALID_ARG, "while capturing", fp8_cuda_timer_stop(ctx, &ms));
    Buf x(FP8_DTYPE_F32, 64);
    CUDA_OK(fp8_cuda_fill(ctx, x.p(), FP8_DTYPE_F32, 64, 2.0));
    fp8_cuda_graph_t g = nullptr;
    CUDA_OK(fp8_cuda_graph_end(ctx, &g)); /* the capture is intact */
    CHECK(g != nullptr, "graph_end after refused timers gave no graph");
    x.set(0, 0.0f);
    CUDA_OK(fp8_cuda_graph_launch(ctx, g));
    CUDA_OK(fp8_cuda_synchronize(ctx));
    CHECK(x.get(0) == 2.0f, "the replay of a capture with refused timers wrote %g", x.get(0));
    CUDA_OK(fp8_cuda_graph_destroy(g));
    CUDA_OK(fp8_cuda_timer_start(ctx));
    CUDA_OK(fp8_cuda_timer_stop(ctx, &ms));
}

void test_context() {
    own_memory_pool();
    timers_during_capture();
    fresh_context_scratch();
    probe_and_devices();
    context_basics();
    memory_and_copies();
    graphs();
}

}  // namespace harness
