/*
 * dist_nccl.c — libfp8_dist_nccl: the NCCL plugin of libfp8_dist, for device
 * (CUDA) buffers. libfp8_dist dlopens it only for the NCCL backend, so the MPI
 * library never pulls CUDA into a CPU-only process. The communicator is
 * bootstrapped by libfp8_dist over MPI (rank 0's ncclUniqueId is broadcast),
 * which is how multi-node jobs start.
 * Build: libfp8/src/dist/CMakeLists.txt, when nccl.h, libnccl and cudart are found.
 *
 * Every call is synchronous: enqueue on the stream, record an event, poll the
 * event and ncclCommGetAsyncError against a deadline. On a timeout the
 * communicator is aborted (ncclCommAbort stops its kernels, so no buffer is
 * written later) and the process group becomes unusable.
 */
#define _GNU_SOURCE
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "dist_internal.h"

static fp8_dist_fail_fn fail;
static ncclComm_t comm;
static cudaStream_t stream; /* NULL: the legacy default stream, ordered after other blocking streams */
static cudaEvent_t done;

static int32_t cuda_fail(const char *fn, cudaError_t e, const char *what) {
    return fail(FP8_ERR_BACKEND, fn, "%s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

static int32_t nccl_fail(const char *fn, ncclResult_t r, const char *what) {
    const char *detail = comm ? ncclGetLastError(comm) : "";
    return fail(FP8_ERR_BACKEND, fn, "%s failed: %s%s%s", what, ncclGetErrorString(r), *detail ? ": " : "", detail);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int32_t ready(const char *fn) {
    if (!comm) return fail(FP8_ERR_INVALID_ARG, fn, "the NCCL communicator is not initialised (or was aborted)");
    return FP8_OK;
}

/* Waits for everything enqueued on the stream so far, up to timeout_ms (0: forever). */
static int32_t wait_done(const char *fn, const char *what, int64_t timeout_ms) {
    cudaError_t e = cudaEventRecord(done, stream);
    if (e != cudaSuccess) return cuda_fail(fn, e, "cudaEventRecord");
    double start = now_ms();
    for (;;) {
        e = cudaEventQuery(done);
        if (e == cudaSuccess) return FP8_OK;
        if (e != cudaErrorNotReady) return cuda_fail(fn, e, what);
        ncclResult_t async = ncclSuccess;
        ncclCommGetAsyncError(comm, &async);
        if (async != ncclSuccess && async != ncclInProgress) {
            int32_t st = nccl_fail(fn, async, what);
            ncclCommAbort(comm);
            comm = NULL;
            return st;
        }
        if (timeout_ms > 0 && now_ms() - start > (double)timeout_ms) {
            ncclCommAbort(comm);
            comm = NULL;
            return fail(FP8_ERR_BACKEND, fn,
                        "NCCL %s timed out after %lld ms waiting for the other ranks: a rank skipped this "
                        "collective, called another one, or died; the communicator was aborted",
                        what, (long long)timeout_ms);
        }
        sched_yield();
    }
}

static ncclDataType_t nccl_type(int32_t dtype) { return dtype == FP8_DTYPE_F32 ? ncclFloat32 : ncclBfloat16; }

static ncclRedOp_t nccl_op(int32_t op) {
    return op == FP8_DIST_MAX ? ncclMax : op == FP8_DIST_AVG ? ncclAvg : ncclSum;
}

static int32_t get_unique_id(void *id) {
    ncclResult_t r = ncclGetUniqueId((ncclUniqueId *)id);
    return r == ncclSuccess ? FP8_OK : nccl_fail("fp8_dist_init", r, "ncclGetUniqueId");
}

static int32_t init(const void *id, int32_t rank, int32_t size, int32_t local_rank) {
    const char *fn = "fp8_dist_init";
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) return cuda_fail(fn, e, "cudaGetDeviceCount (the NCCL backend needs a GPU)");
    if (n == 0) return fail(FP8_ERR_UNSUPPORTED, fn, "the NCCL backend needs a GPU and none is visible");
    if ((e = cudaSetDevice(local_rank % n)) != cudaSuccess) return cuda_fail(fn, e, "cudaSetDevice");
    if ((e = cudaEventCreateWithFlags(&done, cudaEventDisableTiming)) != cudaSuccess)
        return cuda_fail(fn, e, "cudaEventCreate");
    ncclUniqueId uid;
    memcpy(&uid, id, sizeof uid);
    ncclResult_t r = ncclCommInitRank(&comm, size, uid, rank);
    if (r != ncclSuccess) {
        comm = NULL;
        return nccl_fail(fn, r, "ncclCommInitRank");
    }
    return FP8_OK;
}

static int32_t finalize(void) {
    if (comm) {
        ncclCommFinalize(comm);
        ncclCommDestroy(comm);
        comm = NULL;
    }
    if (done) {
        cudaEventDestroy(done);
        done = NULL;
    }
    return FP8_OK;
}

static int32_t set_stream(void *s) {
    stream = (cudaStream_t)s;
    return FP8_OK;
}

static int32_t all_reduce(const char *fn, void *buf, int32_t dtype, int64_t count, int32_t op, int64_t timeout_ms) {
    int32_t st = ready(fn);
    if (st) return st;
    ncclResult_t r = ncclAllReduce(buf, buf, (size_t)count, nccl_type(dtype), nccl_op(op), comm, stream);
    if (r != ncclSuccess) return nccl_fail(fn, r, "ncclAllReduce");
    return wait_done(fn, "all_reduce", timeout_ms);
}

static int32_t all_gather(const char *fn, void *recv, const void *send, int64_t nbytes, int64_t timeout_ms) {
    int32_t st = ready(fn);
    if (st) return st;
    ncclResult_t r = ncclAllGather(send, recv, (size_t)nbytes, ncclUint8, comm, stream);
    if (r != ncclSuccess) return nccl_fail(fn, r, "ncclAllGather");
    return wait_done(fn, "all_gather", timeout_ms);
}

static int32_t reduce_scatter(const char *fn, void *recv, const void *send, int32_t dtype, int64_t recv_count,
                              int32_t op, int64_t timeout_ms) {
    int32_t st = ready(fn);
    if (st) return st;
    ncclResult_t r = ncclReduceScatter(send, recv, (size_t)recv_count, nccl_type(dtype), nccl_op(op), comm, stream);
    if (r != ncclSuccess) return nccl_fail(fn, r, "ncclReduceScatter");
    return wait_done(fn, "reduce_scatter", timeout_ms);
}

static int32_t broadcast(const char *fn, void *buf, int64_t nbytes, int32_t root, int64_t timeout_ms) {
    int32_t st = ready(fn);
    if (st) return st;
    ncclResult_t r = ncclBroadcast(buf, buf, (size_t)nbytes, ncclUint8, root, comm, stream);
    if (r != ncclSuccess) return nccl_fail(fn, r, "ncclBroadcast");
    return wait_done(fn, "broadcast", timeout_ms);
}

static const fp8_dist_nccl_api api = {
    .abi = FP8_DIST_NCCL_ABI,
    .get_unique_id = get_unique_id,
    .init = init,
    .finalize = finalize,
    .set_stream = set_stream,
    .all_reduce = all_reduce,
    .all_gather = all_gather,
    .reduce_scatter = reduce_scatter,
    .broadcast = broadcast,
};

FP8_API int32_t fp8_dist_nccl_plugin(fp8_dist_fail_fn fail_fn, const fp8_dist_nccl_api **out) {
    if (!fail_fn || !out) return FP8_ERR_INVALID_ARG;
    fail = fail_fn;
    *out = &api;
    return FP8_OK;
}
