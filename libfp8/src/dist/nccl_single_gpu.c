/*
 * nccl_single_gpu.c — the NCCL plugin (dist_nccl.c) on one GPU without MPI:
 * one rank joins a communicator of size 1 through the plugin's own table
 * (get_unique_id, init), then all-reduce (sum, max, avg; f32 and bf16),
 * all-gather, reduce-scatter and broadcast run on device buffers on a
 * non-blocking stream, each checked against the host. The output buffers are
 * filled with a marker first, so a collective that does not write fails.
 * bench/gpu/check.sh builds it with libfp8/src/cuda/CMakeLists.txt (no oneDNN,
 * no MPI needed) and runs it:
 *   build-gpu-cuda/fp8_nccl_single_gpu
 * Prints "nccl single-GPU: PASS ..." and exits 0, or the first failure and exits 1.
 */
#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dist_internal.h"

/* exported by dist_nccl.c (libfp8_dist_nccl.so), compiled into this test */
int32_t fp8_dist_nccl_plugin(fp8_dist_fail_fn fail_fn, const fp8_dist_nccl_api **out);

#define N (1 << 20)
static char last[1024];

static int32_t record(int32_t status, const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(last, sizeof last, "%s: ", fn);
    vsnprintf(last + k, sizeof last - (size_t)k, fmt, ap);
    va_end(ap);
    return status;
}

#define TRY(call)                                                                          \
    do {                                                                                   \
        if ((call) != 0) {                                                                 \
            printf("nccl single-GPU: FAIL %s: %s\n", #call, last);                         \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)
#define CUDA(call)                                                                         \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            printf("nccl single-GPU: FAIL %s: %s\n", #call, cudaGetErrorString(e_));       \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

static float host_in[N], host_out[N];
static unsigned char bytes_out[4 * N];

/* f32 bit pattern -> bf16 bits (RNE; inputs here are finite). */
static unsigned short to_bf16(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

/* After a collective on `stream`: waits for it, copies nbytes of dev into host and
 * compares them with want; says what differed. Returns 1 on a match. */
static int matches_host(const char *what, cudaStream_t stream, void *host, const void *dev, const void *want,
                        size_t nbytes) {
    cudaError_t e = cudaStreamSynchronize(stream);
    if (e == cudaSuccess) e = cudaMemcpy(host, dev, nbytes, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        printf("nccl single-GPU: FAIL reading back %s: %s\n", what, cudaGetErrorString(e));
        return 0;
    }
    if (memcmp(host, want, nbytes) != 0) {
        printf("nccl single-GPU: FAIL %s differs from the host\n", what);
        return 0;
    }
    return 1;
}
#define EXPECT_HOST(what, host, dev, want, nbytes)                                           \
    do {                                                                                   \
        if (!matches_host(what, stream, host, dev, want, nbytes)) return 1;                \
        checks++;                                                                          \
    } while (0)

int main(void) {
    const fp8_dist_nccl_api *api = NULL;
    if (fp8_dist_nccl_plugin(record, &api) != 0 || !api || api->abi != FP8_DIST_NCCL_ABI) {
        printf("nccl single-GPU: FAIL the plugin table (abi %d)\n", api ? api->abi : -1);
        return 1;
    }
    unsigned char id[FP8_DIST_NCCL_ID_BYTES];
    TRY(api->get_unique_id(id));
    TRY(api->init(id, 0, 1, 0));
    cudaStream_t stream;
    CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    TRY(api->set_stream(stream));
    void *d_in = NULL, *d_out = NULL;
    CUDA(cudaMalloc(&d_in, 4 * N));
    CUDA(cudaMalloc(&d_out, 4 * N));
    for (int i = 0; i < N; i++) host_in[i] = (float)((i * 37) % 1001) * 0.25f - 100.0f;
    const long long t = 60000; /* ms */
    int checks = 0;

    /* all-reduce in place: one rank, so every op returns the input (avg divides by 1) */
    const int ops[3] = {FP8_DIST_SUM, FP8_DIST_MAX, FP8_DIST_AVG};
    for (int k = 0; k < 3; k++) {
        CUDA(cudaMemcpy(d_in, host_in, 4 * N, cudaMemcpyHostToDevice));
        CUDA(cudaDeviceSynchronize()); /* the legacy-stream copy, before the non-blocking stream reads it */
        TRY(api->all_reduce("all_reduce f32", d_in, FP8_DTYPE_F32, N, ops[k], t));
        char what[32];
        snprintf(what, sizeof what, "all_reduce f32 op %d", ops[k]);
        EXPECT_HOST(what, host_out, d_in, host_in, 4 * N);
    }
    static unsigned short h16[N], o16[N];
    for (int i = 0; i < N; i++) h16[i] = to_bf16(host_in[i]);
    CUDA(cudaMemcpy(d_in, h16, 2 * N, cudaMemcpyHostToDevice));
    CUDA(cudaDeviceSynchronize());
    TRY(api->all_reduce("all_reduce bf16", d_in, FP8_DTYPE_BF16, N, FP8_DIST_SUM, t));
    EXPECT_HOST("all_reduce bf16", o16, d_in, h16, 2 * N);

    /* all-gather, reduce-scatter, broadcast into a buffer marked first */
    CUDA(cudaMemcpy(d_in, host_in, 4 * N, cudaMemcpyHostToDevice));
    CUDA(cudaMemset(d_out, 0xEE, 4 * N));
    CUDA(cudaDeviceSynchronize());
    TRY(api->all_gather("all_gather", d_out, d_in, 4 * N, t));
    EXPECT_HOST("all_gather", bytes_out, d_out, host_in, 4 * N);
    CUDA(cudaMemset(d_out, 0xEE, 4 * N));
    CUDA(cudaDeviceSynchronize());
    TRY(api->reduce_scatter("reduce_scatter", d_out, d_in, FP8_DTYPE_F32, N, FP8_DIST_SUM, t));
    EXPECT_HOST("reduce_scatter", host_out, d_out, host_in, 4 * N);
    TRY(api->broadcast("broadcast", d_in, 4 * N, 0, t));
    EXPECT_HOST("broadcast", host_out, d_in, host_in, 4 * N);
    TRY(api->finalize());
    cudaFree(d_in);
    cudaFree(d_out);
    cudaStreamDestroy(stream);
    printf("nccl single-GPU: PASS (%d checks: all_reduce sum/max/avg f32 and sum bf16, all_gather, reduce_scatter, "
           "broadcast; %d elements, device buffers, one rank)\n", checks, N);
    return 0;
}
