/*
 * dist_mpi.c — libfp8_dist: the process group and its collectives. Host
 * buffers go through MPI; device buffers go to the NCCL plugin (dist_nccl.c),
 * loaded only for the NCCL backend. Declarations: the "distributed" section of
 * fp8.h. Built by libfp8/src/dist/CMakeLists.txt when CMake finds MPI.
 *
 * Three things every collective here does that bare MPI does not:
 *  - it is non-blocking underneath (MPI_I*) and polled against a deadline, so a
 *    rank that never arrives turns into an error naming the op, not a hang;
 *  - on the first use of each (collective, tag) the ranks all-gather a small
 *    signature (op, dtype, count, shape) on a separate communicator and compare
 *    it, so a shape mismatch is reported on every rank; every later call (and
 *    every call with the check "off") still agrees on dtype, count, op and root
 *    with one 64-byte all-reduce, so a count that changes on one rank is an
 *    error on every rank, never a corrupted buffer;
 *  - host data is staged in buffers the library owns: a timed-out request may
 *    still write into its buffer later, so that buffer is deliberately leaked
 *    rather than handed back to the caller (who would free it).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist_internal.h"
#include "internal.h" /* bf16 <-> f32 helpers only (libfp8 itself is not linked) */

/* ---- errors ----------------------------------------------------------- */

FP8_DEFINE_LAST_ERROR(last_error, fp8_dist_last_error, fp8_dist_fail)

static int32_t mpi_fail(const char *fn, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return fp8_dist_fail(FP8_ERR_BACKEND, fn, "%s failed: %s", what, msg);
}

/* ---- state --------------------------------------------------------------- */

#define N_KINDS 5
#define SIG_LEN 16
#define SIG_MAGIC 0x66703864 /* "fp8d" */
#define MAX_NDIM 8

static struct {
    int mpi_up;       /* MPI_Init done by us and communicators made */
    int mpi_done;     /* MPI_Finalize called: MPI cannot start again */
    int initialized;  /* fp8_dist_init succeeded (and no finalize yet) */
    int owns_mpi;     /* we called MPI_Init (so we call MPI_Finalize) */
    int broken;       /* a collective timed out: the group is unusable */
    char broken_why[256];
    int32_t rank, size, local_rank, backend, check_mode;
    int64_t timeout_ms;
    MPI_Comm comm;       /* data collectives */
    MPI_Comm check_comm; /* signature checks, so they never interleave with data */
    MPI_Op bf16_sum, bf16_max, f32_max;
    const fp8_dist_nccl_api *nccl;
    int64_t bytes[N_KINDS], calls[N_KINDS];
    uint64_t *seen; /* open-addressing set of (kind, tag) keys already checked; 0 = empty */
    int64_t seen_cap, seen_len;
} g = {.check_mode = FP8_DIST_CHECK_FIRST_USE, .timeout_ms = 300000};

static const char *KIND_NAME[N_KINDS] = {"all_reduce", "all_gather", "reduce_scatter", "broadcast",
                                         "barrier"};

static int32_t dtype_size(int32_t dt) {
    switch (dt) {
    case FP8_DTYPE_F32: case FP8_DTYPE_I32: return 4;
    case FP8_DTYPE_BF16: return 2;
    case FP8_DTYPE_E4M3FN: case FP8_DTYPE_E5M2: case FP8_DTYPE_U8: return 1;
    default: return 0;
    }
}

static const char *dtype_name(int64_t dt) {
    switch (dt) {
    case FP8_DTYPE_F32: return "float32";
    case FP8_DTYPE_BF16: return "bfloat16";
    case FP8_DTYPE_E4M3FN: return "float8_e4m3fn";
    case FP8_DTYPE_E5M2: return "float8_e5m2";
    case FP8_DTYPE_I32: return "int32";
    case FP8_DTYPE_U8: return "uint8";
    default: return "unknown";
    }
}

static const char *op_name(int64_t op) {
    return op == FP8_DIST_SUM ? "sum" : op == FP8_DIST_MAX ? "max" : op == FP8_DIST_AVG ? "avg" : "?";
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* ---- reduction ops MPI lacks: bf16 sum/max, NaN-propagating f32 max ------ */

static float nan_max(float a, float b) { return (a != a || b != b) ? (a != a ? a : b) : (a > b ? a : b); }

static void bf16_sum_fn(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = fp8_f32_to_bf16(fp8_bf16_to_f32(a[i]) + fp8_bf16_to_f32(b[i]));
}

static void bf16_max_fn(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = fp8_f32_to_bf16(nan_max(fp8_bf16_to_f32(a[i]), fp8_bf16_to_f32(b[i])));
}

/* amax must stay NaN when any rank saw a NaN; MPI_MAX leaves that undefined. */
static void f32_max_fn(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    const float *a = in;
    float *b = inout;
    for (int i = 0; i < *len; i++) b[i] = nan_max(a[i], b[i]);
}

static MPI_Datatype mpi_type(int32_t dtype) { return dtype == FP8_DTYPE_F32 ? MPI_FLOAT : MPI_UINT16_T; }

static MPI_Op mpi_op(int32_t dtype, int32_t op) {
    if (dtype == FP8_DTYPE_F32) return op == FP8_DIST_MAX ? g.f32_max : MPI_SUM;
    return op == FP8_DIST_MAX ? g.bf16_max : g.bf16_sum;
}

/* buf (count) /= size, for AVG (identical on every rank: same input bits). */
static void divide_by_size(void *buf, int32_t dtype, int64_t count) {
    float s = (float)g.size;
    for (int64_t i = 0; i < count; i++) fp8_store_hp(buf, dtype, i, fp8_load_hp(buf, dtype, i) / s);
}

/* ---- waiting with a deadline --------------------------------------------- */

/* Polls req until it completes or the timeout passes. `what` describes the
 * call for messages ("all_reduce(sum) of float32 [1024]"). */
static int32_t wait_for(MPI_Request *req, const char *fn, const char *what) {
    double start = now_ms();
    for (long iter = 0;; iter++) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(fn, rc, what);
        if (done) return FP8_OK;
        if (iter < 200) continue; /* most collectives finish within a few polls */
        double waited = now_ms() - start;
        if (g.timeout_ms > 0 && waited > (double)g.timeout_ms) {
            g.broken = 1;
            snprintf(g.broken_why, sizeof g.broken_why, "%s timed out after %lld ms", what,
                     (long long)g.timeout_ms);
            return fp8_dist_fail(FP8_ERR_BACKEND, fn,
                                 "%s timed out after %lld ms waiting for the other ranks (rank %d of %d): "
                                 "a rank skipped this collective, called another one, or died; "
                                 "the process group is unusable now",
                                 what, (long long)g.timeout_ms, g.rank, g.size);
        }
        if (waited < 2.0) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50000}; /* 50 us: ranks may share cores (--oversubscribe) */
            nanosleep(&ts, NULL);
        }
    }
}

/* ---- the first-use signature check --------------------------------------- */

static uint64_t seen_key(int32_t kind, int64_t tag) {
    uint64_t k = (uint64_t)tag * 0x9E3779B97F4A7C15ull ^ ((uint64_t)kind + 1) * 0xC2B2AE3D27D4EB4Full;
    return k ? k : 1;
}

static int seen_has(uint64_t k) {
    if (!g.seen) return 0;
    for (int64_t i = (int64_t)(k % (uint64_t)g.seen_cap);; i = (i + 1) % g.seen_cap) {
        if (g.seen[i] == k) return 1;
        if (g.seen[i] == 0) return 0;
    }
}

static void seen_add(uint64_t k) {
    if (seen_has(k)) return;
    if ((g.seen_len + 1) * 2 > g.seen_cap) {
        int64_t cap = g.seen_cap ? g.seen_cap * 2 : 256;
        uint64_t *t = calloc((size_t)cap, sizeof *t);
        if (!t) return; /* out of memory: we simply check this key again next time */
        for (int64_t j = 0; j < g.seen_cap; j++) {
            uint64_t v = g.seen[j];
            if (!v) continue;
            int64_t i = (int64_t)(v % (uint64_t)cap);
            while (t[i]) i = (i + 1) % cap;
            t[i] = v;
        }
        free(g.seen);
        g.seen = t;
        g.seen_cap = cap;
    }
    int64_t i = (int64_t)(k % (uint64_t)g.seen_cap);
    while (g.seen[i]) i = (i + 1) % g.seen_cap;
    g.seen[i] = k;
    g.seen_len++;
}

/* "all_reduce(sum) on float32 [4, 8]" */
static void describe(char *out, size_t n, const int64_t *s) {
    int kind = (s[1] >= 0 && s[1] < N_KINDS) ? (int)s[1] : 0;
    int k = snprintf(out, n, "%s", KIND_NAME[kind]);
    if (s[1] == FP8_DIST_ALL_REDUCE || s[1] == FP8_DIST_REDUCE_SCATTER)
        k += snprintf(out + k, n - (size_t)k, "(%s)", op_name(s[5]));
    if (s[1] == FP8_DIST_BROADCAST) k += snprintf(out + k, n - (size_t)k, "(root %lld)", (long long)s[6]);
    if (s[1] == FP8_DIST_BARRIER) return;
    k += snprintf(out + k, n - (size_t)k, " on %s [", dtype_name(s[3]));
    for (int64_t d = 0; d < s[7] && d < MAX_NDIM && k < (int)n; d++)
        k += snprintf(out + k, n - (size_t)k, "%s%lld", d ? ", " : "", (long long)s[8 + d]);
    if (k < (int)n) snprintf(out + k, n - (size_t)k, "]");
}

/* The every-call guard behind the first-use check (and under "off"): the ranks
 * agree on (dtype, count, op, root) before any data collective is posted,
 * through one MPI_MAX all-reduce of 8 int64 (each value and its negation) on
 * the check communicator: a few microseconds, against corrupted staging
 * buffers or MPI_ERR_TRUNCATE on one rank and a silent result on another when
 * a call site's element count changes on some ranks only. Fails identically on
 * every rank; no data moves, so the group stays usable (docs/architecture.md). */
static int32_t check_count_agrees(const char *fn, int64_t tag, const int64_t *sig, const char *what) {
    const int64_t dtype = sig[3], count = sig[4], op = sig[5], root = sig[6];
    int64_t *v = malloc(8 * sizeof *v);
    if (!v) return fp8_dist_fail(FP8_ERR_OUT_OF_MEMORY, fn, "out of memory for the count check");
    const int64_t mine[8] = {dtype, -dtype, count, -count, op, -op, root, -root};
    memcpy(v, mine, sizeof mine);
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, v, 8, MPI_INT64_T, MPI_MAX, g.check_comm, &req);
    if (rc != MPI_SUCCESS) return free(v), mpi_fail(fn, rc, "count check (MPI_Iallreduce)");
    /* a rank that skips this call is caught here: the timeout names the collective itself */
    int32_t st = wait_for(&req, fn, what);
    if (st != FP8_OK) return st; /* v may still be written: leaked on purpose */
    int64_t r[8];
    memcpy(r, v, sizeof r);
    free(v);
    if (r[0] == -r[1] && r[2] == -r[3] && r[4] == -r[5] && r[6] == -r[7]) return FP8_OK;
    int64_t *vv = r;
    return fp8_dist_fail(FP8_ERR_INVALID_ARG, fn,
                         "ranks disagree on this collective (tag %lld, after its first-use shape check): element "
                         "counts range from %lld to %lld, dtype codes from %lld to %lld, op codes from %lld to %lld, "
                         "roots from %lld to %lld (this rank calls %s); no data was exchanged",
                         (long long)tag, (long long)-vv[3], (long long)vv[2], (long long)-vv[1], (long long)vv[0],
                         (long long)-vv[5], (long long)vv[4], (long long)-vv[7], (long long)vv[6], what);
}

/* Validates shape against count and, when the mode asks, compares the call's
 * signature across ranks. Fails identically on every rank on a mismatch. */
static int32_t check_signature(const char *fn, int32_t kind, int64_t tag, int32_t dtype, int64_t count,
                               int32_t op, int32_t root, const int64_t *shape, int32_t ndim,
                               char *what, size_t what_len) {
    DIST_REQUIRE(ndim >= 0 && ndim <= MAX_NDIM, fn, "ndim must be in 0..%d, got %d", MAX_NDIM, ndim);
    DIST_REQUIRE(ndim == 0 || shape != NULL, fn, "shape is NULL but ndim is %d", ndim);
    int64_t sig[SIG_LEN] = {SIG_MAGIC, kind, tag, dtype, count, op, root, ndim ? ndim : 1};
    int64_t prod = 1;
    for (int32_t d = 0; d < ndim; d++) {
        DIST_REQUIRE(shape[d] >= 0, fn, "shape[%d] is negative (%lld)", d, (long long)shape[d]);
        prod *= shape[d];
        sig[8 + d] = shape[d];
    }
    if (ndim == 0) sig[8] = count;
    if (kind == FP8_DIST_BARRIER) sig[7] = 0;
    DIST_REQUIRE(ndim == 0 || prod == count, fn, "shape has %lld elements but count is %lld", (long long)prod,
                 (long long)count);
    describe(what, what_len, sig);

    uint64_t key = seen_key(kind, tag);
    if (g.check_mode == FP8_DIST_CHECK_OFF || (g.check_mode == FP8_DIST_CHECK_FIRST_USE && seen_has(key)))
        return kind == FP8_DIST_BARRIER ? FP8_OK : check_count_agrees(fn, tag, sig, what);
    int64_t *all = malloc(sizeof(int64_t) * SIG_LEN * (size_t)g.size);
    if (!all) return fp8_dist_fail(FP8_ERR_OUT_OF_MEMORY, fn, "out of memory for the shape check");
    MPI_Request req;
    int rc = MPI_Iallgather(sig, SIG_LEN, MPI_INT64_T, all, SIG_LEN, MPI_INT64_T, g.check_comm, &req);
    if (rc != MPI_SUCCESS) {
        free(all);
        return mpi_fail(fn, rc, "shape check (MPI_Iallgather)");
    }
    char check_what[320];
    snprintf(check_what, sizeof check_what, "cross-rank shape check before %s", what);
    int32_t st = wait_for(&req, fn, check_what);
    if (st != FP8_OK) return st; /* `all` may still be written: leaked on purpose */

    int mismatch = 0;
    for (int r = 1; r < g.size; r++) mismatch |= memcmp(all, all + (size_t)r * SIG_LEN, sizeof sig) != 0;
    if (mismatch) {
        char msg[900];
        int k = snprintf(msg, sizeof msg, "ranks disagree on this collective (checked on first use of tag %lld): ",
                         (long long)tag);
        int listed = 0;
        for (int r = 0; r < g.size && k < (int)sizeof msg; r++) {
            if (r > 0 && memcmp(all, all + (size_t)r * SIG_LEN, sizeof sig) == 0) continue;
            if (listed == 4) {
                k += snprintf(msg + k, sizeof msg - (size_t)k, "; ...");
                break;
            }
            char d[200];
            describe(d, sizeof d, all + (size_t)r * SIG_LEN);
            k += snprintf(msg + k, sizeof msg - (size_t)k, "%srank %d calls %s", listed ? "; " : "", r, d);
            listed++;
        }
        free(all);
        return fp8_dist_fail(FP8_ERR_INVALID_ARG, fn, "%s", msg);
    }
    free(all);
    seen_add(key);
    return FP8_OK;
}

/* ---- entry-point preamble ------------------------------------------------ */

static int32_t ready(const char *fn, int32_t where) {
    if (!g.initialized) return fp8_dist_fail(FP8_ERR_INVALID_ARG, fn, "no process group: call fp8_dist_init first");
    if (g.broken) return fp8_dist_fail(FP8_ERR_BACKEND, fn, "the process group is unusable: %s", g.broken_why);
    DIST_REQUIRE(where == FP8_DIST_HOST || where == FP8_DIST_DEVICE, fn,
                 "where must be FP8_DIST_HOST (0) or FP8_DIST_DEVICE (1), got %d", where);
    if (where == FP8_DIST_DEVICE && !g.nccl)
        return fp8_dist_fail(FP8_ERR_UNSUPPORTED, fn,
                             "device buffers need the NCCL backend (fp8_dist_init(FP8_DIST_BACKEND_NCCL, ...))");
    return FP8_OK;
}

static void count_bytes(int32_t kind, int64_t bytes) {
    g.bytes[kind] += bytes;
    g.calls[kind]++;
}

static int32_t device_result(int32_t st) {
    if (st != FP8_OK && strstr(last_error, "timed out")) {
        g.broken = 1;
        snprintf(g.broken_why, sizeof g.broken_why, "an NCCL collective timed out and its communicator was aborted");
    }
    return st;
}

/* ---- process group ------------------------------------------------------- */

/* OpenMPI loads most of itself as plugins (mca_pml_ob1.so, mca_coll_*.so, ...)
 * with dlopen, and some use symbols of libmpi without linking it (`ldd
 * mca_pml_ob1.so` has no libmpi, `nm -D` lists ompi_* undefined). Those resolve
 * only if libmpi is in the global symbol scope. Bun's dlopen of this library
 * is RTLD_LOCAL, so libmpi (our dependency) arrives local. On Debian's OpenMPI
 * 4.1 it still works, by accident: an earlier plugin that does link libmpi
 * (mca_op_avx.so) is opened RTLD_GLOBAL and drags libmpi into the global scope
 * (LD_DEBUG=scopes shows it); other builds and load orders fail inside MPI_Init
 * with "undefined symbol: ompi_...". So, before MPI_Init, reopen the very libmpi
 * that provides MPI_Init with RTLD_GLOBAL, which promotes it and its
 * dependencies; dladdr finds its path, so any soname works (libmpi.so.40 for
 * OpenMPI, libmpi.so.12 for MPICH). mpi4py does the same for the same reason. */
static int32_t promote_libmpi_global(const char *fn) {
    Dl_info info;
    if (!dladdr((void *)&MPI_Init, &info) || !info.dli_fname)
        return fp8_dist_fail(FP8_ERR_BACKEND, fn, "cannot locate the MPI library (dladdr(MPI_Init) failed)");
    if (!dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL))
        return fp8_dist_fail(FP8_ERR_BACKEND, fn, "dlopen(%s, RTLD_GLOBAL) failed: %s", info.dli_fname, dlerror());
    return FP8_OK;
}

static int32_t mpi_start(const char *fn) {
    if (g.mpi_up) return FP8_OK;
    if (g.mpi_done)
        return fp8_dist_fail(FP8_ERR_UNSUPPORTED, fn,
                             "MPI was finalized in this process and cannot start again (one process group per process)");
    int32_t st = promote_libmpi_global(fn);
    if (st) return st;
    int inited = 0, rc;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(fn, rc, "MPI_Init_thread");
        g.owns_mpi = 1;
    }
    /* errors come back as codes; MPI must never abort the Bun process */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &g.comm)) != MPI_SUCCESS) return mpi_fail(fn, rc, "MPI_Comm_dup");
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &g.check_comm)) != MPI_SUCCESS) return mpi_fail(fn, rc, "MPI_Comm_dup");
    MPI_Comm_set_errhandler(g.comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(g.check_comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g.comm, &g.rank);
    MPI_Comm_size(g.comm, &g.size);
    MPI_Comm node;
    if (MPI_Comm_split_type(g.comm, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &g.local_rank);
        MPI_Comm_free(&node);
    }
    MPI_Op_create(bf16_sum_fn, 1, &g.bf16_sum);
    MPI_Op_create(bf16_max_fn, 1, &g.bf16_max);
    MPI_Op_create(f32_max_fn, 1, &g.f32_max);
    g.mpi_up = 1;
    return FP8_OK;
}

static void plugin_path(char *out, size_t n) {
    const char *env = getenv("FP8_DIST_NCCL_LIB");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return;
    }
    Dl_info info;
    const char *self = dladdr((void *)&fp8_dist_init, &info) && info.dli_fname ? info.dli_fname : "";
    const char *slash = strrchr(self, '/');
    int dir = slash ? (int)(slash - self) : 0;
    snprintf(out, n, "%.*s%slibfp8_dist_nccl.so", dir, self, slash ? "/" : "");
}

static int32_t nccl_start(const char *fn) {
    char path[1024];
    plugin_path(path, sizeof path);
    if (!g.nccl) {
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            return fp8_dist_fail(FP8_ERR_UNSUPPORTED, fn,
                                 "the nccl backend needs libfp8_dist_nccl.so (built when CMake finds NCCL and the "
                                 "CUDA runtime): %s",
                                 dlerror());
        fp8_dist_nccl_plugin_fn entry = (fp8_dist_nccl_plugin_fn)dlsym(h, "fp8_dist_nccl_plugin");
        const fp8_dist_nccl_api *api = NULL;
        if (!entry || entry(fp8_dist_fail, &api) != FP8_OK || !api || api->abi != FP8_DIST_NCCL_ABI)
            return fp8_dist_fail(FP8_ERR_BACKEND, fn, "%s is not a compatible NCCL plugin (ABI %d expected)", path,
                                 FP8_DIST_NCCL_ABI);
        g.nccl = api;
    }
    /* Bootstrap over MPI, as multi-node NCCL jobs do: rank 0 makes the id. */
    unsigned char id[FP8_DIST_NCCL_ID_BYTES] = {0};
    int32_t st = g.rank == 0 ? g.nccl->get_unique_id(id) : FP8_OK;
    int32_t all_ok = st == FP8_OK;
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, &all_ok, 1, MPI_INT32_T, MPI_MIN, g.comm, &req);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, rc, "MPI_Iallreduce (NCCL bootstrap)");
    int32_t wst = wait_for(&req, fn, "NCCL bootstrap");
    if (wst) return wst;
    if (st) return st;
    if (!all_ok) return fp8_dist_fail(FP8_ERR_BACKEND, fn, "rank 0 could not create the ncclUniqueId");
    rc = MPI_Ibcast(id, FP8_DIST_NCCL_ID_BYTES, MPI_BYTE, 0, g.comm, &req);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, rc, "MPI_Ibcast (ncclUniqueId)");
    if ((wst = wait_for(&req, fn, "broadcast of the ncclUniqueId"))) return wst;
    g.nccl->set_timeout(g.timeout_ms); /* init's deadline (issue 16) */
    return g.nccl->init(id, g.rank, g.size, g.local_rank);
}

int32_t fp8_dist_init(int32_t backend, int64_t timeout_ms) {
    const char *fn = "fp8_dist_init";
    DIST_REQUIRE(backend == FP8_DIST_BACKEND_MPI || backend == FP8_DIST_BACKEND_NCCL, fn,
                 "backend must be FP8_DIST_BACKEND_MPI (0) or FP8_DIST_BACKEND_NCCL (1), got %d", backend);
    DIST_REQUIRE(timeout_ms >= 0, fn, "timeout_ms must be >= 0 (0 = wait forever), got %lld", (long long)timeout_ms);
    if (g.initialized) return fp8_dist_fail(FP8_ERR_INVALID_ARG, fn, "the process group is already initialised");
    int32_t st = mpi_start(fn);
    if (st) return st;
    g.timeout_ms = timeout_ms;
    g.broken = 0;
    if (backend == FP8_DIST_BACKEND_NCCL && (st = nccl_start(fn))) return st;
    g.backend = backend;
    g.initialized = 1;
    return fp8_dist_reset_counters();
}

int32_t fp8_dist_finalize(void) {
    const char *fn = "fp8_dist_finalize";
    if (!g.mpi_up) return FP8_OK;
    if (g.nccl && g.initialized && g.backend == FP8_DIST_BACKEND_NCCL) g.nccl->finalize();
    g.initialized = 0;
    free(g.seen);
    g.seen = NULL;
    g.seen_cap = g.seen_len = 0;
    if (g.broken) {
        /* A request that never completed is still posted; MPI_Finalize would
         * wait for it forever. Leave MPI running and let the process exit. */
        g.mpi_up = 0;
        g.mpi_done = 1;
        return fp8_dist_fail(FP8_ERR_BACKEND, fn,
                             "skipped MPI_Finalize because %s; exit this process (mpirun then ends the job)",
                             g.broken_why);
    }
    MPI_Op_free(&g.bf16_sum);
    MPI_Op_free(&g.bf16_max);
    MPI_Op_free(&g.f32_max);
    MPI_Comm_free(&g.comm);
    MPI_Comm_free(&g.check_comm);
    g.mpi_up = 0;
    g.mpi_done = 1;
    if (g.owns_mpi) {
        int rc = MPI_Finalize();
        if (rc != MPI_SUCCESS) return mpi_fail(fn, rc, "MPI_Finalize");
    }
    return FP8_OK;
}

int32_t fp8_dist_rank(int32_t *out) {
    DIST_REQUIRE(out, "fp8_dist_rank", "out is NULL");
    DIST_REQUIRE(g.initialized, "fp8_dist_rank", "no process group: call fp8_dist_init first");
    *out = g.rank;
    return FP8_OK;
}

int32_t fp8_dist_size(int32_t *out) {
    DIST_REQUIRE(out, "fp8_dist_size", "out is NULL");
    DIST_REQUIRE(g.initialized, "fp8_dist_size", "no process group: call fp8_dist_init first");
    *out = g.size;
    return FP8_OK;
}

int32_t fp8_dist_local_rank(int32_t *out) {
    DIST_REQUIRE(out, "fp8_dist_local_rank", "out is NULL");
    DIST_REQUIRE(g.initialized, "fp8_dist_local_rank", "no process group: call fp8_dist_init first");
    *out = g.local_rank;
    return FP8_OK;
}

int32_t fp8_dist_has_nccl(int32_t *out) {
    DIST_REQUIRE(out, "fp8_dist_has_nccl", "out is NULL");
    char path[1024];
    plugin_path(path, sizeof path);
    *out = access(path, R_OK) == 0;
    return FP8_OK;
}

int32_t fp8_dist_set_timeout(int64_t timeout_ms) {
    DIST_REQUIRE(timeout_ms >= 0, "fp8_dist_set_timeout", "timeout_ms must be >= 0 (0 = wait forever), got %lld",
                 (long long)timeout_ms);
    g.timeout_ms = timeout_ms;
    return FP8_OK;
}

int32_t fp8_dist_set_shape_check(int32_t mode) {
    DIST_REQUIRE(mode >= FP8_DIST_CHECK_OFF && mode <= FP8_DIST_CHECK_ALWAYS, "fp8_dist_set_shape_check",
                 "mode must be 0 (off), 1 (first use) or 2 (always), got %d", mode);
    g.check_mode = mode;
    return FP8_OK;
}

int32_t fp8_dist_set_stream(void *cuda_stream) {
    if (!g.nccl) return fp8_dist_fail(FP8_ERR_UNSUPPORTED, "fp8_dist_set_stream", "the NCCL backend is not loaded");
    return g.nccl->set_stream(cuda_stream);
}

int32_t fp8_dist_bytes_sent(int32_t kind, int64_t *bytes, int64_t *calls) {
    const char *fn = "fp8_dist_bytes_sent";
    DIST_REQUIRE(kind >= 0 && kind < N_KINDS, fn, "kind must be 0..%d, got %d", N_KINDS - 1, kind);
    DIST_REQUIRE(bytes && calls, fn, "bytes or calls is NULL");
    *bytes = g.bytes[kind];
    *calls = g.calls[kind];
    return FP8_OK;
}

int32_t fp8_dist_reset_counters(void) {
    memset(g.bytes, 0, sizeof g.bytes);
    memset(g.calls, 0, sizeof g.calls);
    return FP8_OK;
}

/* ---- collectives --------------------------------------------------------- */

static int32_t check_count(const char *fn, int64_t count, int64_t elems_per_rank_factor) {
    DIST_REQUIRE(count >= 0, fn, "count must be >= 0, got %lld", (long long)count);
    DIST_REQUIRE(count * elems_per_rank_factor <= INT_MAX, fn,
                 "count %lld is beyond MPI's int element count; split the buffer", (long long)count);
    return FP8_OK;
}

int32_t fp8_dist_all_reduce(void *buf, int32_t dtype, int64_t count, int32_t op, int32_t where, int64_t tag,
                            const int64_t *shape, int32_t ndim) {
    const char *fn = "fp8_dist_all_reduce";
    int32_t st = ready(fn, where);
    if (st) return st;
    DIST_REQUIRE(dtype == FP8_DTYPE_F32 || dtype == FP8_DTYPE_BF16, fn, "dtype must be float32 or bfloat16, got %s",
                 dtype_name(dtype));
    DIST_REQUIRE(op >= FP8_DIST_SUM && op <= FP8_DIST_AVG, fn, "op must be SUM, MAX or AVG, got %d", op);
    if ((st = check_count(fn, count, g.size))) return st;
    DIST_REQUIRE(buf || count == 0, fn, "buf is NULL");
    char what[256];
    if ((st = check_signature(fn, FP8_DIST_ALL_REDUCE, tag, dtype, count, op, 0, shape, ndim, what, sizeof what)))
        return st;
    int64_t item = dtype_size(dtype), nbytes = count * item;
    if (where == FP8_DIST_DEVICE) {
        st = device_result(g.nccl->all_reduce(fn, buf, dtype, count, op, g.timeout_ms));
        if (!st) count_bytes(FP8_DIST_ALL_REDUCE, nbytes);
        return st;
    }
    if (count == 0) return FP8_OK;
    /* Sums run as reduce-scatter + all-gather so every rank ends with the same
     * bits (each block is reduced once, on one rank); MPI's recursive-doubling
     * all-reduce may round differently per rank beyond 2 ranks, which would let
     * data-parallel replicas drift apart. MAX is exact: one all-reduce. */
    int two_phase = op != FP8_DIST_MAX && g.size > 2;
    int64_t block = two_phase ? (count + g.size - 1) / g.size : count;
    int64_t padded = two_phase ? block * g.size : count;
    unsigned char *stage = calloc((size_t)(padded * item) + 1, 1);
    if (!stage) return fp8_dist_fail(FP8_ERR_OUT_OF_MEMORY, fn, "out of memory staging %lld bytes", (long long)nbytes);
    memcpy(stage, buf, (size_t)nbytes);
    MPI_Request req;
    int rc;
    if (!two_phase) {
        rc = MPI_Iallreduce(MPI_IN_PLACE, stage, (int)count, mpi_type(dtype), mpi_op(dtype, op), g.comm, &req);
        if (rc != MPI_SUCCESS) return free(stage), mpi_fail(fn, rc, "MPI_Iallreduce");
        if ((st = wait_for(&req, fn, what))) return st;
    } else {
        unsigned char *mine = stage + (size_t)(g.rank * block * item);
        unsigned char *part = malloc((size_t)(block * item) + 1);
        if (!part) return free(stage), fp8_dist_fail(FP8_ERR_OUT_OF_MEMORY, fn, "out of memory");
        rc = MPI_Ireduce_scatter_block(stage, part, (int)block, mpi_type(dtype), mpi_op(dtype, op), g.comm, &req);
        if (rc != MPI_SUCCESS) return free(stage), free(part), mpi_fail(fn, rc, "MPI_Ireduce_scatter_block");
        if ((st = wait_for(&req, fn, what))) return st;
        memcpy(mine, part, (size_t)(block * item));
        free(part);
        rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, stage, (int)(block * item), MPI_BYTE, g.comm, &req);
        if (rc != MPI_SUCCESS) return free(stage), mpi_fail(fn, rc, "MPI_Iallgather");
        if ((st = wait_for(&req, fn, what))) return st;
    }
    if (op == FP8_DIST_AVG) divide_by_size(stage, dtype, count);
    memcpy(buf, stage, (size_t)nbytes);
    free(stage);
    count_bytes(FP8_DIST_ALL_REDUCE, nbytes);
    return FP8_OK;
}

int32_t fp8_dist_all_gather(void *recv, const void *send, int32_t dtype, int64_t count, int32_t where, int64_t tag,
                            const int64_t *shape, int32_t ndim) {
    const char *fn = "fp8_dist_all_gather";
    int32_t st = ready(fn, where);
    if (st) return st;
    int64_t item = dtype_size(dtype);
    DIST_REQUIRE(item > 0, fn, "unknown dtype %d", dtype);
    if ((st = check_count(fn, count * item, g.size))) return st;
    DIST_REQUIRE((recv && send) || count == 0, fn, "recv or send is NULL");
    char what[256];
    if ((st = check_signature(fn, FP8_DIST_ALL_GATHER, tag, dtype, count, 0, 0, shape, ndim, what, sizeof what)))
        return st;
    int64_t nbytes = count * item;
    if (where == FP8_DIST_DEVICE) {
        st = device_result(g.nccl->all_gather(fn, recv, send, nbytes, g.timeout_ms));
        if (!st) count_bytes(FP8_DIST_ALL_GATHER, nbytes);
        return st;
    }
    if (count == 0) return FP8_OK;
    unsigned char *stage = malloc((size_t)(nbytes * g.size));
    if (!stage) return fp8_dist_fail(FP8_ERR_OUT_OF_MEMORY, fn, "out of memory staging %lld bytes", (long long)(nbytes * g.size));
    memcpy(stage + (size_t)(g.rank * nbytes), send, (size_t)nbytes);
    MPI_Request req;
    int rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, stage, (int)nbytes, MPI_BYTE, g.comm, &req);
    if (rc != MPI_SUCCESS) return free(stage), mpi_fail(fn, rc, "MPI_Iallgather");
    if ((st = wait_for(&req, fn, what))) return st;
    memcpy(recv, stage, (size_t)(nbytes * g.size));
    free(stage);
    count_bytes(FP8_DIST_ALL_GATHER, nbytes);
    return FP8_OK;
}

int32_t fp8_dist_reduce_scatter(void *recv, const void *send, int32_t dtype, int64_t recv_count, int32_t op,
                                int32_t where, int64_t tag, const int64_t *shape, int32_t ndim) {
    const char *fn = "fp8_dist_reduce_scatter";
    int32_t st = ready(fn, where);
    if (st) return st;
    DIST_REQUIRE(dtype == FP8_DTYPE_F32 || dtype == FP8_DTYPE_BF16, fn, "dtype must be float32 or bfloat16, got %s",
                 dtype_name(dtype));
    DIST_REQUIRE(op >= FP8_DIST_SUM && op <= FP8_DIST_AVG, fn, "op must be SUM, MAX or AVG, got %d", op);
    if ((st = check_count(fn, recv_count, g.size))) return st;
    DIST_REQUIRE((recv && send) || recv_count == 0, fn, "recv or send is NULL");
    int64_t total = recv_count * g.size, item = dtype_size(dtype);
    char what[256];
    if ((st = check_signature(fn, FP8_DIST_REDUCE_SCATTER, tag, dtype, total, op, 0, shape, ndim, what, sizeof what)))
        return st;
    if (where == FP8_DIST_DEVICE) {
        st = device_result(g.nccl->reduce_scatter(fn, recv, send, dtype, recv_count, op, g.timeout_ms));
        if (!st) count_bytes(FP8_DIST_REDUCE_SCATTER, total * item);
        return st;
    }
    if (recv_count == 0) return FP8_OK;
    unsigned char *in = malloc((size_t)(total * item));
    unsigned char *out = malloc((size_t)(recv_count * item));
    if (!in || !out) return free(in), free(out), fp8_dist_fail(FP8_ERR_OUT_OF_MEMORY, fn, "out of memory staging");
    memcpy(in, send, (size_t)(total * item));
    MPI_Request req;
    int rc = MPI_Ireduce_scatter_block(in, out, (int)recv_count, mpi_type(dtype), mpi_op(dtype, op), g.comm, &req);
    if (rc != MPI_SUCCESS) return free(in), free(out), mpi_fail(fn, rc, "MPI_Ireduce_scatter_block");
    if ((st = wait_for(&req, fn, what))) return st;
    if (op == FP8_DIST_AVG) divide_by_size(out, dtype, recv_count);
    memcpy(recv, out, (size_t)(recv_count * item));
    free(in);
    free(out);
    count_bytes(FP8_DIST_REDUCE_SCATTER, total * item);
    return FP8_OK;
}

int32_t fp8_dist_broadcast(void *buf, int32_t dtype, int64_t count, int32_t root, int32_t where, int64_t tag,
                           const int64_t *shape, int32_t ndim) {
    const char *fn = "fp8_dist_broadcast";
    int32_t st = ready(fn, where);
    if (st) return st;
    int64_t item = dtype_size(dtype);
    DIST_REQUIRE(item > 0, fn, "unknown dtype %d", dtype);
    DIST_REQUIRE(root >= 0 && root < g.size, fn, "root %d is not a rank of a group of %d", root, g.size);
    if ((st = check_count(fn, count * item, 1))) return st;
    DIST_REQUIRE(buf || count == 0, fn, "buf is NULL");
    char what[256];
    if ((st = check_signature(fn, FP8_DIST_BROADCAST, tag, dtype, count, 0, root, shape, ndim, what, sizeof what)))
        return st;
    int64_t nbytes = count * item;
    if (where == FP8_DIST_DEVICE) {
        st = device_result(g.nccl->broadcast(fn, buf, nbytes, root, g.timeout_ms));
        if (!st) count_bytes(FP8_DIST_BROADCAST, g.rank == root ? nbytes : 0);
        return st;
    }
    if (count == 0) return FP8_OK;
    unsigned char *stage = malloc((size_t)nbytes);
    if (!stage) return fp8_dist_fail(FP8_ERR_OUT_OF_MEMORY, fn, "out of memory staging %lld bytes", (long long)nbytes);
    memcpy(stage, buf, (size_t)nbytes);
    MPI_Request req;
    int rc = MPI_Ibcast(stage, (int)nbytes, MPI_BYTE, root, g.comm, &req);
    if (rc != MPI_SUCCESS) return free(stage), mpi_fail(fn, rc, "MPI_Ibcast");
    if ((st = wait_for(&req, fn, what))) return st;
    memcpy(buf, stage, (size_t)nbytes);
    free(stage);
    count_bytes(FP8_DIST_BROADCAST, g.rank == root ? nbytes : 0);
    return FP8_OK;
}

int32_t fp8_dist_barrier(void) {
    const char *fn = "fp8_dist_barrier";
    int32_t st = ready(fn, FP8_DIST_HOST);
    if (st) return st;
    char what[256];
    if ((st = check_signature(fn, FP8_DIST_BARRIER, 0, FP8_DTYPE_U8, 0, 0, 0, NULL, 0, what, sizeof what))) return st;
    MPI_Request req;
    int rc = MPI_Ibarrier(g.comm, &req);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, rc, "MPI_Ibarrier");
    if ((st = wait_for(&req, fn, "barrier"))) return st;
    count_bytes(FP8_DIST_BARRIER, 0);
    return FP8_OK;
}
