/*
 * nccl_smoke.c — checks the NCCL path of libfp8_dist end to end on a GPU:
 * device all-reduce (sum, max, avg; f32 and bf16), all-gather, reduce-scatter
 * and broadcast through the public fp8_dist_* API, against host-computed
 * expectations. World size 1 needs no mpirun (MPI starts as a singleton):
 *   build/fp8_dist_nccl_smoke                 # 1 rank, 1 GPU
 *   mpirun -n 2 build/fp8_dist_nccl_smoke     # 2 ranks on 2 GPUs
 * Prints "nccl smoke: OK" and exits 0, or the first failure and exits 1.
 */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fp8.h"

#define N 1024
#define TRY(call)                                                                            \
    do {                                                                                     \
        if ((call) != 0) {                                                                   \
            printf("nccl smoke: FAIL %s: %s\n", #call, fp8_dist_last_error());               \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)
#define CUDA(call)                                                                           \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess) {                                                             \
            printf("nccl smoke: FAIL %s: %s\n", #call, cudaGetErrorString(e_));              \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)

static int expect(const char *what, const float *got, const float *want, int n) {
    for (int i = 0; i < n; i++) {
        if (fabsf(got[i] - want[i]) > 1e-5f * (1.0f + fabsf(want[i]))) {
            printf("nccl smoke: FAIL %s: element %d is %g, expected %g\n", what, i, got[i], want[i]);
            return 1;
        }
    }
    return 0;
}

int main(void) {
    TRY(fp8_dist_init(FP8_DIST_BACKEND_NCCL, 60000));
    int32_t rank, size;
    TRY(fp8_dist_rank(&rank));
    TRY(fp8_dist_size(&size));
    static float host[N * 8], want[N * 8], got[N * 8];
    float *dev, *dev2;
    CUDA(cudaMalloc((void **)&dev, sizeof(float) * N * 8));
    CUDA(cudaMalloc((void **)&dev2, sizeof(float) * N * 8));
    int64_t shape[1] = {N};

    /* all-reduce sum: element i on rank r is r + i */
    for (int i = 0; i < N; i++) host[i] = (float)(rank + i);
    for (int i = 0; i < N; i++) want[i] = (float)(size * i) + (float)(size * (size - 1)) / 2.0f;
    CUDA(cudaMemcpy(dev, host, sizeof(float) * N, cudaMemcpyHostToDevice));
    TRY(fp8_dist_all_reduce(dev, FP8_DTYPE_F32, N, FP8_DIST_SUM, FP8_DIST_DEVICE, 1, shape, 1));
    CUDA(cudaMemcpy(got, dev, sizeof(float) * N, cudaMemcpyDeviceToHost));
    if (expect("all_reduce(sum)", got, want, N)) return 1;

    /* all-reduce max and avg */
    for (int i = 0; i < N; i++) host[i] = (float)(rank * 3 - i);
    for (int i = 0; i < N; i++) want[i] = (float)((size - 1) * 3 - i);
    CUDA(cudaMemcpy(dev, host, sizeof(float) * N, cudaMemcpyHostToDevice));
    TRY(fp8_dist_all_reduce(dev, FP8_DTYPE_F32, N, FP8_DIST_MAX, FP8_DIST_DEVICE, 2, shape, 1));
    CUDA(cudaMemcpy(got, dev, sizeof(float) * N, cudaMemcpyDeviceToHost));
    if (expect("all_reduce(max)", got, want, N)) return 1;
    for (int i = 0; i < N; i++) want[i] = (float)(size - 1) * 1.5f - (float)i;
    CUDA(cudaMemcpy(dev, host, sizeof(float) * N, cudaMemcpyHostToDevice));
    TRY(fp8_dist_all_reduce(dev, FP8_DTYPE_F32, N, FP8_DIST_AVG, FP8_DIST_DEVICE, 3, shape, 1));
    CUDA(cudaMemcpy(got, dev, sizeof(float) * N, cudaMemcpyDeviceToHost));
    if (expect("all_reduce(avg)", got, want, N)) return 1;

    /* all-gather: raw bytes, rank order */
    for (int i = 0; i < N; i++) host[i] = (float)(rank * N + i);
    for (int i = 0; i < N * size; i++) want[i] = (float)i;
    CUDA(cudaMemcpy(dev, host, sizeof(float) * N, cudaMemcpyHostToDevice));
    TRY(fp8_dist_all_gather(dev2, dev, FP8_DTYPE_F32, N, FP8_DIST_DEVICE, 4, shape, 1));
    CUDA(cudaMemcpy(got, dev2, sizeof(float) * N * size, cudaMemcpyDeviceToHost));
    if (expect("all_gather", got, want, N * size)) return 1;

    /* reduce-scatter: every rank holds 0..size*N-1; rank r gets block r times size */
    int64_t full[1] = {(int64_t)N * size};
    for (int i = 0; i < N * size; i++) host[i] = (float)i;
    for (int i = 0; i < N; i++) want[i] = (float)((rank * N + i) * size);
    CUDA(cudaMemcpy(dev, host, sizeof(float) * N * size, cudaMemcpyHostToDevice));
    TRY(fp8_dist_reduce_scatter(dev2, dev, FP8_DTYPE_F32, N, FP8_DIST_SUM, FP8_DIST_DEVICE, 5, full, 1));
    CUDA(cudaMemcpy(got, dev2, sizeof(float) * N, cudaMemcpyDeviceToHost));
    if (expect("reduce_scatter", got, want, N)) return 1;

    /* broadcast from the last rank */
    for (int i = 0; i < N; i++) host[i] = (float)(rank * 7 + i);
    for (int i = 0; i < N; i++) want[i] = (float)((size - 1) * 7 + i);
    CUDA(cudaMemcpy(dev, host, sizeof(float) * N, cudaMemcpyHostToDevice));
    TRY(fp8_dist_broadcast(dev, FP8_DTYPE_F32, N, size - 1, FP8_DIST_DEVICE, 6, shape, 1));
    CUDA(cudaMemcpy(got, dev, sizeof(float) * N, cudaMemcpyDeviceToHost));
    if (expect("broadcast", got, want, N)) return 1;

    int64_t bytes, calls;
    TRY(fp8_dist_bytes_sent(FP8_DIST_ALL_GATHER, &bytes, &calls));
    if (bytes != (int64_t)sizeof(float) * N || calls != 1) {
        printf("nccl smoke: FAIL all_gather counter: %lld bytes in %lld calls\n", (long long)bytes, (long long)calls);
        return 1;
    }
    cudaFree(dev);
    cudaFree(dev2);
    TRY(fp8_dist_finalize());
    if (rank == 0) printf("nccl smoke: OK (%d rank%s)\n", size, size > 1 ? "s" : "");
    return 0;
}
