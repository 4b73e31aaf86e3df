/*
 * dist_internal.h — shared by libfp8_dist (MPI, dist_mpi.c) and its optional
 * NCCL plugin libfp8_dist_nccl (dist_nccl.c). Not installed, not public.
 *
 * libfp8_dist never links CUDA: when a process group is created with the NCCL
 * backend it dlopens libfp8_dist_nccl.so (built next to it when NCCL and the
 * CUDA runtime are found) and talks to it through fp8_dist_nccl_api. So a
 * CPU-only machine never loads anything CUDA (docs/architecture.md, "Device backends").
 */
#ifndef FP8_DIST_INTERNAL_H
#define FP8_DIST_INTERNAL_H

#include <stdint.h>

#include "fp8.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Records "fn: message" as this thread's fp8_dist_last_error() and returns status. */
typedef int32_t (*fp8_dist_fail_fn)(int32_t status, const char *fn, const char *fmt, ...);

int32_t fp8_dist_fail(int32_t status, const char *fn, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#define DIST_REQUIRE(cond, fn, ...)                                              \
    do {                                                                         \
        if (!(cond)) return fp8_dist_fail(FP8_ERR_INVALID_ARG, fn, __VA_ARGS__); \
    } while (0)

/* Version of the struct below; the loader refuses a plugin with another. */
#define FP8_DIST_NCCL_ABI 2
/* Bytes of an ncclUniqueId (NCCL_UNIQUE_ID_BYTES). */
#define FP8_DIST_NCCL_ID_BYTES 128

/* The NCCL plugin's entry points. Buffers are device pointers; collectives are
 * stream-ordered: they return once enqueued on the plugin's stream, and later
 * work on that stream (or a host read that synchronizes it) sees the result.
 * `fn` is the public function name used in error messages. A collective that
 * does not finish within timeout_ms, or an asynchronous NCCL error, makes the
 * plugin's watchdog abort the communicator; the next call fails with why. */
typedef struct {
    int32_t abi;
    int32_t (*get_unique_id)(void *id /* FP8_DIST_NCCL_ID_BYTES */);
    /* Binds this process to GPU `device` and joins the communicator. */
    int32_t (*init)(const void *id, int32_t rank, int32_t size, int32_t device);
    int32_t (*finalize)(void);
    /* cudaStream_t to order collectives after (NULL: the legacy default stream). */
    int32_t (*set_stream)(void *stream);
    int32_t (*all_reduce)(const char *fn, void *buf, int32_t dtype, int64_t count, int32_t op,
                          int64_t timeout_ms);
    int32_t (*all_gather)(const char *fn, void *recv, const void *send, int64_t nbytes,
                          int64_t timeout_ms);
    int32_t (*reduce_scatter)(const char *fn, void *recv, const void *send, int32_t dtype,
                              int64_t recv_count, int32_t op, int64_t timeout_ms);
    int32_t (*broadcast)(const char *fn, void *buf, int64_t nbytes, int32_t root,
                         int64_t timeout_ms);
    /* Deadline of init (ms; 0 = forever); ABI 2. */
    int32_t (*set_timeout)(int64_t timeout_ms);
} fp8_dist_nccl_api;

/* Exported by libfp8_dist_nccl.so: hands out its table; errors go through `fail`. */
typedef int32_t (*fp8_dist_nccl_plugin_fn)(fp8_dist_fail_fn fail, const fp8_dist_nccl_api **out);

#ifdef __cplusplus
}
#endif

#endif
