/*
 * dist_nccl.c — libfp8_dist_nccl: the NCCL plugin of libfp8_dist, for device
 * (CUDA) buffers. libfp8_dist dlopens it only for the NCCL backend, so the MPI
 * library never pulls CUDA into a CPU-only process. The communicator is
 * bootstrapped by libfp8_dist over MPI (rank 0's ncclUniqueId is broadcast),
 * which is how multi-node jobs start.
 * Build: libfp8/src/dist/CMakeLists.txt, when nccl.h, libnccl and cudart are found.
 *
 * Collectives are stream-ordered (issue 16): each returns once enqueued on the
 * stream set by set_stream (the compute stream), so the gradient all-reduce
 * overlaps the rest of backward; a watchdog thread aborts the communicator on
 * an asynchronous NCCL error or a collective past its timeout (see below), and
 * the next call reports why. The communicator is created non-blocking
 * (ncclCommInitRankConfig, blocking = 0) under a deadline.
 */
#define _GNU_SOURCE
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dist_internal.h"

static fp8_dist_fail_fn fail;
static ncclComm_t comm;
static cudaStream_t stream; /* NULL: the legacy default stream, ordered after other blocking streams */
static int64_t init_timeout_ms = 300000; /* set_timeout; 0 = forever */

/* The watchdog (issue 16): collectives return once enqueued; a thread polls
 * ncclCommGetAsyncError and the completion event of the latest collective
 * every few milliseconds, and aborts the communicator (ncclCommAbort stops its
 * kernels, so no buffer is written later) on an asynchronous error or when
 * that collective has not finished within its timeout. The next call then
 * fails with the reason; nothing ever blocks the stream or the host. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t watchdog;
static int watchdog_running, watchdog_stop;
static cudaEvent_t last_done;     /* recorded after the latest collective */
static int pending;               /* last_done not yet seen complete */
static double pending_since;      /* when it was enqueued (ms) */
static int64_t pending_timeout;   /* its timeout (ms; 0 = none) */
static char pending_what[64];
static char aborted_why[512];     /* non-empty: the communicator was aborted, and why */
static int watchdog_device;

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

/* Under mu: aborts the communicator and keeps why. */
static void abort_locked(const char *why) {
    if (comm) ncclCommAbort(comm);
    comm = NULL;
    pending = 0;
    snprintf(aborted_why, sizeof aborted_why, "%s", why);
}

/* Under mu: one look at the communicator and the latest collective. */
static void poll_locked(void) {
    if (!comm) return;
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
        char why[512];
        snprintf(why, sizeof why, "NCCL reported an asynchronous error: %s (%s); the communicator was aborted",
                 ncclGetErrorString(async), ncclGetLastError(comm));
        abort_locked(why);
        return;
    }
    if (!pending) return;
    const cudaError_t e = cudaEventQuery(last_done);
    if (e == cudaSuccess) {
        pending = 0;
    } else if (e != cudaErrorNotReady) {
        char why[512];
        snprintf(why, sizeof why, "NCCL %s failed on the device: %s; the communicator was aborted", pending_what,
                 cudaGetErrorString(e));
        abort_locked(why);
    } else if (pending_timeout > 0 && now_ms() - pending_since > (double)pending_timeout) {
        char why[512];
        snprintf(why, sizeof why,
                 "NCCL %s timed out after %lld ms waiting for the other ranks: a rank skipped this collective, "
                 "called another one, or died; the communicator was aborted",
                 pending_what, (long long)pending_timeout);
        abort_locked(why);
    }
}

static void *watchdog_main(void *arg) {
    (void)arg;
    cudaSetDevice(watchdog_device); /* cudaEventQuery on this thread needs the device */
    for (;;) {
        pthread_mutex_lock(&mu);
        const int stop = watchdog_stop;
        if (!stop) poll_locked();
        pthread_mutex_unlock(&mu);
        if (stop) return NULL;
        struct timespec d = {0, 5 * 1000 * 1000}; /* 5 ms */
        nanosleep(&d, NULL);
    }
}

/* Under mu: OK when the communicator is usable, else the reason it is not. */
static int32_t ready_locked(const char *fn) {
    if (aborted_why[0]) return fail(FP8_ERR_BACKEND, fn, "%s", aborted_why);
    if (!comm) return fail(FP8_ERR_INVALID_ARG, fn, "the NCCL communicator is not initialised (or was aborted)");
    return FP8_OK;
}

/* Under mu, after a collective was enqueued: the watchdog watches it from now on. */
static int32_t enqueued_locked(const char *fn, const char *what, int64_t timeout_ms) {
    cudaError_t e = cudaEventRecord(last_done, stream);
    if (e != cudaSuccess) return cuda_fail(fn, e, "cudaEventRecord");
    pending = 1;
    pending_since = now_ms();
    pending_timeout = timeout_ms;
    snprintf(pending_what, sizeof pending_what, "%s", what);
    return FP8_OK;
}

/* Waits (host) until the latest collective finished or the watchdog aborted: for
 * finalize, where the host needs everything done. */
static int32_t wait_pending(const char *fn) {
    for (;;) {
        pthread_mutex_lock(&mu);
        if (!watchdog_running) poll_locked();
        const int busy = pending && comm;
        const int32_t st = aborted_why[0] ? fail(FP8_ERR_BACKEND, fn, "%s", aborted_why) : FP8_OK;
        pthread_mutex_unlock(&mu);
        if (!busy || st) return st;
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

static int32_t set_timeout(int64_t timeout_ms) {
    init_timeout_ms = timeout_ms;
    return FP8_OK;
}

/* Joins the communicator without blocking (ncclCommInitRankConfig, blocking = 0)
 * and polls it against init_timeout_ms: a rank that died after the id broadcast
 * cannot hang the others. Then starts the watchdog. */
static int32_t init(const void *id, int32_t rank, int32_t size, int32_t local_rank) {
    const char *fn = "fp8_dist_init";
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) return cuda_fail(fn, e, "cudaGetDeviceCount (the NCCL backend needs a GPU)");
    if (n == 0) return fail(FP8_ERR_UNSUPPORTED, fn, "the NCCL backend needs a GPU and none is visible");
    watchdog_device = local_rank % n;
    if ((e = cudaSetDevice(watchdog_device)) != cudaSuccess) return cuda_fail(fn, e, "cudaSetDevice");
    if ((e = cudaEventCreateWithFlags(&last_done, cudaEventDisableTiming)) != cudaSuccess)
        return cuda_fail(fn, e, "cudaEventCreate");
    ncclUniqueId uid;
    memcpy(&uid, id, sizeof uid);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&comm, size, uid, rank, &config);
    const double start = now_ms();
    while (r == ncclInProgress || r == ncclSuccess) {
        ncclResult_t state = ncclInProgress;
        if (ncclCommGetAsyncError(comm, &state) != ncclSuccess) break;
        r = state;
        if (r != ncclInProgress) break;
        if (init_timeout_ms > 0 && now_ms() - start > (double)init_timeout_ms) {
            ncclCommAbort(comm);
            comm = NULL;
            return fail(FP8_ERR_BACKEND, fn,
                        "ncclCommInitRankConfig did not complete within %lld ms: another rank did not join "
                        "(it died after the id broadcast?); the communicator was aborted",
                        (long long)init_timeout_ms);
        }
        sched_yield();
    }
    if (r != ncclSuccess) {
        int32_t st = nccl_fail(fn, r, "ncclCommInitRankConfig");
        if (comm) ncclCommAbort(comm);
        comm = NULL;
        return st;
    }
    aborted_why[0] = 0;
    pending = 0;
    watchdog_stop = 0;
    if (pthread_create(&watchdog, NULL, watchdog_main, NULL) == 0) watchdog_running = 1;
    return FP8_OK;
}

static int32_t finalize(void) {
    wait_pending("fp8_dist_finalize");
    if (watchdog_running) {
        pthread_mutex_lock(&mu);
        watchdog_stop = 1;
        pthread_mutex_unlock(&mu);
        pthread_join(watchdog, NULL);
        watchdog_running = 0;
    }
    pthread_mutex_lock(&mu);
    if (comm) {
        ncclCommFinalize(comm);
        ncclCommDestroy(comm);
        comm = NULL;
    }
    if (last_done) {
        cudaEventDestroy(last_done);
        last_done = NULL;
    }
    aborted_why[0] = 0;
    pending = 0;
    pthread_mutex_unlock(&mu);
    return FP8_OK;
}

static int32_t set_stream(void *s) {
    stream = (cudaStream_t)s;
    return FP8_OK;
}

/* Collectives are stream-ordered: enqueued on the plugin's stream (the compute
 * stream the caller set), they return at once; later work on that stream, and a
 * host read of the result (which synchronizes the stream), see them finished. */
#define ENQUEUE(fn, what, timeout_ms, call)                            \
    do {                                                               \
        pthread_mutex_lock(&mu);                                       \
        int32_t st_ = ready_locked(fn);                                \
        if (!st_) {                                                    \
            ncclResult_t r_ = (call);                                  \
            st_ = r_ == ncclSuccess ? enqueued_locked(fn, what, timeout_ms) \
                                    : nccl_fail(fn, r_, #call);        \
        }                                                              \
        pthread_mutex_unlock(&mu);                                     \
        return st_;                                                    \
    } while (0)

static int32_t all_reduce(const char *fn, void *buf, int32_t dtype, int64_t count, int32_t op, int64_t timeout_ms) {
    ENQUEUE(fn, "all_reduce", timeout_ms,
            ncclAllReduce(buf, buf, (size_t)count, nccl_type(dtype), nccl_op(op), comm, stream));
}

static int32_t all_gather(const char *fn, void *recv, const void *send, int64_t nbytes, int64_t timeout_ms) {
    ENQUEUE(fn, "all_gather", timeout_ms, ncclAllGather(send, recv, (size_t)nbytes, ncclUint8, comm, stream));
}

static int32_t reduce_scatter(const char *fn, void *recv, const void *send, int32_t dtype, int64_t recv_count,
                              int32_t op, int64_t timeout_ms) {
    ENQUEUE(fn, "reduce_scatter", timeout_ms,
            ncclReduceScatter(send, recv, (size_t)recv_count, nccl_type(dtype), nccl_op(op), comm, stream));
}

static int32_t broadcast(const char *fn, void *buf, int64_t nbytes, int32_t root, int64_t timeout_ms) {
    ENQUEUE(fn, "broadcast", timeout_ms, ncclBroadcast(buf, buf, (size_t)nbytes, ncclUint8, root, comm, stream));
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
    .set_timeout = set_timeout,
};

FP8_API int32_t fp8_dist_nccl_plugin(fp8_dist_fail_fn fail_fn, const fp8_dist_nccl_api **out) {
    if (!fail_fn || !out) return FP8_ERR_INVALID_ARG;
    fail = fail_fn;
    *out = &api;
    return FP8_OK;
}
