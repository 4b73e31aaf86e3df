/*
 * alloc.c — the allocator behind every native tensor buffer.
 * 64-byte aligned (AVX-512 loads, oneDNN's preference); a 64-byte header in
 * front of each block records its size so that live bytes can be counted
 * (the TypeScript memory test asserts they stay flat over a training loop).
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

#define FP8_ALIGN 64
#define FP8_MAGIC 0x46503842u /* "FP8B" */

static _Atomic int64_t live_bytes;
static _Atomic int64_t live_allocs;

typedef struct {
    int64_t nbytes;
    uint32_t magic;
} block_header;

int32_t fp8_alloc(int64_t nbytes, void **out) {
    FP8_REQUIRE_PTR(out, "fp8_alloc");
    FP8_REQUIRE(nbytes >= 0, "fp8_alloc", "nbytes must be >= 0, got %lld", (long long)nbytes);
    FP8_REQUIRE(nbytes <= ((int64_t)1 << 46), "fp8_alloc", "nbytes %lld is too large",
                (long long)nbytes);
    size_t total = (size_t)nbytes + FP8_ALIGN;
    total = (total + FP8_ALIGN - 1) / FP8_ALIGN * FP8_ALIGN;
    unsigned char *base = aligned_alloc(FP8_ALIGN, total);
    if (!base)
        return fp8_fail(FP8_ERR_OUT_OF_MEMORY, "fp8_alloc", "out of memory allocating %lld bytes",
                        (long long)nbytes);
    block_header *h = (block_header *)base;
    h->nbytes = nbytes;
    h->magic = FP8_MAGIC;
    atomic_fetch_add(&live_bytes, nbytes);
    atomic_fetch_add(&live_allocs, 1);
    *out = base + FP8_ALIGN;
    return FP8_OK;
}

int32_t fp8_free(void *p) {
    if (!p) return FP8_OK;
    block_header *h = (block_header *)((unsigned char *)p - FP8_ALIGN);
    FP8_REQUIRE(h->magic == FP8_MAGIC, "fp8_free", "pointer was not allocated by fp8_alloc or was freed twice");
    h->magic = 0;
    atomic_fetch_sub(&live_bytes, h->nbytes);
    atomic_fetch_sub(&live_allocs, 1);
    free(h);
    return FP8_OK;
}

int32_t fp8_memory_stats(int64_t *bytes, int64_t *allocs) {
    FP8_REQUIRE_PTR(bytes, "fp8_memory_stats");
    FP8_REQUIRE_PTR(allocs, "fp8_memory_stats");
    *bytes = atomic_load(&live_bytes);
    *allocs = atomic_load(&live_allocs);
    return FP8_OK;
}
