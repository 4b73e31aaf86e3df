/*
 * alloc.c — the allocator behind every native tensor buffer.
 *
 * 64-byte aligned (AVX-512 loads, oneDNN's preference); a 64-byte header in
 * front of each block records its size so that live bytes can be counted
 * (the TypeScript memory test asserts they stay flat over a training loop).
 *
 * Large blocks are cached. A training step frees and re-allocates the same
 * sizes every step, and on this kind of machine first-touch page faults cost
 * far more than the work itself (measured: ~126 ms to fault in 32 MiB against
 * 2.5 ms to copy into it once touched). So a freed block of >= 64 KiB goes to a
 * size-class free list (classes 2^k * {4,5,6,7}/4: at most 25 % slack) and is
 * handed out again to the next request of its class, as PyTorch's CUDA caching
 * allocator does. Blocks of >= 2 MiB are 2 MiB aligned and advised as huge
 * pages, so their first touch faults 512x less often. The cache holds at most
 * FP8_CACHE_LIMIT_MB (environment, default 1024) MiB; a block freed beyond that
 * goes back to the C library, and every 64 MiB of such blocks (and
 * fp8_empty_cache, which returns the whole cache) trims the C library's heap
 * (malloc_trim), so memory above the limit goes back to the OS instead of
 * staying in the process (issue 15; docs/architecture.md).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

#define FP8_ALIGN 64
#define FP8_MAGIC 0x46503842u /* "FP8B" */
#define CACHE_MIN ((size_t)64 << 10)
#define HUGE_ALIGN ((size_t)2 << 20)
#define N_CLASSES 256
#define TRIM_EVERY ((int64_t)64 << 20)

typedef struct block_header {
    int64_t nbytes;              /* requested size (what live bytes count) */
    size_t capacity;             /* usable bytes after the header (size class) */
    struct block_header *next;   /* free-list link while cached */
    uint32_t magic;
} block_header;

static _Atomic int64_t live_bytes;
static _Atomic int64_t live_allocs;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static block_header *free_lists[N_CLASSES];
static int64_t cached_bytes;
static int64_t cache_limit = -1;
static int64_t freed_since_trim; /* bytes of large blocks given back to the C library since the last trim */

/* Returns the C library's free heap memory to the OS (glibc keeps freed heap
 * blocks, and large freed blocks below its dynamic mmap threshold, otherwise). */
static void trim_heap(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* Size class of n >= CACHE_MIN: index and capacity (2^k * m/4, m in 4..7). */
static int size_class(size_t n, size_t *capacity) {
    int k = 63 - __builtin_clzll((unsigned long long)n); /* 2^k <= n < 2^(k+1) */
    size_t base = (size_t)1 << k;
    size_t step = base >> 2;
    size_t m = (n - base + step - 1) / step; /* 0..4 */
    size_t cap = base + m * step;
    if (m == 4) { k += 1; m = 0; cap = (size_t)1 << k; }
    *capacity = cap;
    int idx = (k - 16) * 4 + (int)m;
    return idx >= 0 && idx < N_CLASSES ? idx : -1;
}

static int64_t limit_bytes(void) {
    if (cache_limit < 0) {
        const char *e = getenv("FP8_CACHE_LIMIT_MB");
        long long mb = e && *e ? atoll(e) : 1024;
        cache_limit = (mb < 0 ? 0 : mb) << 20;
    }
    return cache_limit;
}

static block_header *fresh_block(size_t capacity) {
    size_t total = capacity + FP8_ALIGN;
    size_t align = total >= HUGE_ALIGN ? HUGE_ALIGN : FP8_ALIGN;
    total = (total + align - 1) / align * align;
    void *base = NULL;
    if (posix_memalign(&base, align, total) != 0) return NULL;
    if (align == HUGE_ALIGN) madvise(base, total, MADV_HUGEPAGE); /* a hint: failure is harmless */
    block_header *h = base;
    h->capacity = capacity; /* the size class: what fp8_free files it under */
    return h;
}

int32_t fp8_alloc(int64_t nbytes, void **out) {
    FP8_REQUIRE_PTR(out, "fp8_alloc");
    FP8_REQUIRE(nbytes >= 0, "fp8_alloc", "nbytes must be >= 0, got %lld", (long long)nbytes);
    FP8_REQUIRE(nbytes <= FP8_MAX_ELEMS, "fp8_alloc", "nbytes %lld is too large", (long long)nbytes);
    block_header *h = NULL;
    size_t want = (size_t)nbytes;
    if (want >= CACHE_MIN) {
        size_t cap;
        int c = size_class(want, &cap);
        if (c >= 0) {
            want = cap;
            pthread_mutex_lock(&cache_lock);
            h = free_lists[c];
            if (h) {
                free_lists[c] = h->next;
                cached_bytes -= (int64_t)h->capacity;
            }
            pthread_mutex_unlock(&cache_lock);
        }
    }
    if (!h) h = fresh_block(want);
    if (!h)
        return fp8_fail(FP8_ERR_OUT_OF_MEMORY, "fp8_alloc", "out of memory allocating %lld bytes",
                        (long long)nbytes);
    h->nbytes = nbytes;
    h->magic = FP8_MAGIC;
    h->next = NULL;
    atomic_fetch_add(&live_bytes, nbytes);
    atomic_fetch_add(&live_allocs, 1);
    *out = (unsigned char *)h + FP8_ALIGN;
    return FP8_OK;
}

int32_t fp8_free(void *p) {
    if (!p) return FP8_OK;
    block_header *h = (block_header *)((unsigned char *)p - FP8_ALIGN);
    FP8_REQUIRE(h->magic == FP8_MAGIC, "fp8_free", "pointer was not allocated by fp8_alloc or was freed twice");
    h->magic = 0;
    atomic_fetch_sub(&live_bytes, h->nbytes);
    atomic_fetch_sub(&live_allocs, 1);
    if (h->capacity >= CACHE_MIN) {
        size_t cap;
        int c = size_class(h->capacity, &cap);
        if (c >= 0 && cap == h->capacity) {
            pthread_mutex_lock(&cache_lock);
            int keep = cached_bytes + (int64_t)h->capacity <= limit_bytes();
            if (keep) {
                h->next = free_lists[c];
                free_lists[c] = h;
                cached_bytes += (int64_t)h->capacity;
            }
            int trim = 0;
            if (!keep) {
                freed_since_trim += (int64_t)h->capacity;
                trim = freed_since_trim >= TRIM_EVERY;
                if (trim) freed_since_trim = 0;
            }
            pthread_mutex_unlock(&cache_lock);
            if (keep) return FP8_OK;
            free(h);
            if (trim) trim_heap();
            return FP8_OK;
        }
    }
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

int32_t fp8_memory_cached(int64_t *bytes) {
    FP8_REQUIRE_PTR(bytes, "fp8_memory_cached");
    pthread_mutex_lock(&cache_lock);
    *bytes = cached_bytes;
    pthread_mutex_unlock(&cache_lock);
    return FP8_OK;
}

int32_t fp8_empty_cache(void) {
    pthread_mutex_lock(&cache_lock);
    for (int c = 0; c < N_CLASSES; ++c) {
        while (free_lists[c]) {
            block_header *h = free_lists[c];
            free_lists[c] = h->next;
            free(h);
        }
    }
    cached_bytes = 0;
    freed_since_trim = 0;
    pthread_mutex_unlock(&cache_lock);
    trim_heap();
    return FP8_OK;
}
