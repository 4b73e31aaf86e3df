/*
 * cpu_peak.c — the arithmetic ceiling of this CPU for the GEMMs of a bf16 /
 * float8 training step: how many bf16 multiply-adds its widest bf16
 * instruction retires per second when nothing but that instruction runs
 * (no loads, no stores: the accumulators and operands live in registers or
 * tiles). bench/vs_torch.ts divides each Linear step's GEMM FLOPs by it, so a
 * target like "1.2x torch" can be read against what the silicon allows.
 *
 * Probes, each on T OpenMP threads (one loop per thread, wall time of all):
 *   avx512_bf16  VDPBF16PS zmm, 16 independent accumulators (2 * 32 FLOP each)
 *   amx_bf16     TDPBF16PS on 4 accumulator tiles, 16x16 f32 += 16x32 bf16 .
 *                32x16 bf16 (2 * 16 * 16 * 32 FLOP each); Linux needs the
 *                process to ask for the tile state first (arch_prctl)
 *   f32_fma      VFMADD231PS (zmm with AVX-512F, else ymm with AVX2+FMA)
 * Each probe first runs a short loop on operands of 1.0 and checks that every
 * accumulator holds exactly the expected count, so a probe that does not do
 * the work it claims prints an error instead of a number.
 *
 * Build: part of the default CMake build on x86-64 (target fp8_bench_cpu_peak).
 * Usage: fp8_bench_cpu_peak [--threads T] [--ms MS]
 * Prints one JSON line: GFLOP/s of each probe this CPU has (null where it lacks
 * the instruction, with the reason), the threads and the CPU model.
 */
#define _GNU_SOURCE
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A probe: run(iters, check) returns 0 on success; with check != 0 it verifies the accumulators. */
typedef int (*probe_fn)(long iters, int check, double *flop);

#if defined(__x86_64__)
#define NACC 16

/* ---- AVX512-BF16: acc += a[2i] * b[2i] + a[2i+1] * b[2i+1], 16 f32 lanes ---- */
__attribute__((target("avx512f,avx512bf16"))) static int probe_avx512_bf16(long iters, int check, double *flop) {
    __m512 acc[NACC];
    for (int i = 0; i < NACC; i++) acc[i] = _mm512_setzero_ps();
    __m512i one = _mm512_set1_epi16(0x3f80); /* bf16 1.0 */
    __m512bh a = (__m512bh)one, b = (__m512bh)one;
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < NACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a)); /* keep the loop from being folded */
    }
    *flop = (double)iters * NACC * 16 * 2 * 2;
    if (!check) {
        __m512 s = acc[0];
        for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, acc[i]);
        volatile float sink = _mm512_reduce_add_ps(s); /* every accumulator is used */
        (void)sink;
        return 0;
    }
    float want = (float)(2 * iters); /* each instruction adds 1*1 + 1*1 to every lane */
    for (int i = 0; i < NACC; i++) {
        float out[16];
        _mm512_storeu_ps(out, acc[i]);
        for (int l = 0; l < 16; l++)
            if (out[l] != want) return 1;
    }
    return 0;
}

/* ---- f32 FMA, zmm ---- */
__attribute__((target("avx512f"))) static int probe_f32_fma512(long iters, int check, double *flop) {
    __m512 acc[NACC];
    for (int i = 0; i < NACC; i++) acc[i] = _mm512_setzero_ps();
    __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(1.0f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < NACC; i++) acc[i] = _mm512_fmadd_ps(a, b, acc[i]);
        __asm__ volatile("" : "+v"(a));
    }
    *flop = (double)iters * NACC * 16 * 2;
    if (!check) {
        __m512 s = acc[0];
        for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, acc[i]);
        volatile float sink = _mm512_reduce_add_ps(s);
        (void)sink;
        return 0;
    }
    for (int i = 0; i < NACC; i++) {
        float out[16];
        _mm512_storeu_ps(out, acc[i]);
        for (int l = 0; l < 16; l++)
            if (out[l] != (float)iters) return 1;
    }
    return 0;
}

/* ---- f32 FMA, ymm (AVX2 CPUs) ---- */
__attribute__((target("avx2,fma"))) static int probe_f32_fma256(long iters, int check, double *flop) {
    __m256 acc[NACC];
    for (int i = 0; i < NACC; i++) acc[i] = _mm256_setzero_ps();
    __m256 a = _mm256_set1_ps(1.0f), b = _mm256_set1_ps(1.0f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < NACC; i++) acc[i] = _mm256_fmadd_ps(a, b, acc[i]);
        __asm__ volatile("" : "+x"(a));
    }
    *flop = (double)iters * NACC * 8 * 2;
    float out[8];
    if (!check) {
        __m256 s = acc[0];
        for (int i = 1; i < NACC; i++) s = _mm256_add_ps(s, acc[i]);
        _mm256_storeu_ps(out, s);
        volatile float sink = out[0];
        (void)sink;
        return 0;
    }
    for (int i = 0; i < NACC; i++) {
        _mm256_storeu_ps(out, acc[i]);
        for (int l = 0; l < 8; l++)
            if (out[l] != (float)iters) return 1;
    }
    return 0;
}

/* ---- AMX-BF16 ---- */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

struct tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* tiles 0-3: 16 x 16 f32 accumulators; 4, 5: A (16 rows x 32 bf16); 6, 7: B (16 rows x 32 bf16, pairs) */
__attribute__((target("amx-tile,amx-bf16"))) static int probe_amx_bf16(long iters, int check, double *flop) {
    struct tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    static _Thread_local uint16_t ones[16 * 32];
    for (int i = 0; i < 16 * 32; i++) ones[i] = 0x3f80; /* bf16 1.0 */
    _tile_loadd(4, ones, 64);
    _tile_loadd(5, ones, 64);
    _tile_loadd(6, ones, 64);
    _tile_loadd(7, ones, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    *flop = (double)iters * 4 * 16 * 16 * 32 * 2;
    static _Thread_local float out[4][16 * 16];
    _tile_stored(0, out[0], 64);
    _tile_stored(1, out[1], 64);
    _tile_stored(2, out[2], 64);
    _tile_stored(3, out[3], 64);
    _tile_release();
    if (!check) return 0;
    float want = (float)(32 * iters); /* each instruction adds 32 products of 1 * 1 to every element */
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 16 * 16; i++)
            if (out[t][i] != want) return 1;
    return 0;
}

static int amx_permitted(void) {
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#endif /* __x86_64__ */

/* Runs fn on T threads: a checked warm-up, then timed loops grown until they last >= ms. */
static double measure(probe_fn fn, int threads, double ms, const char **err) {
    int bad = 0;
    double flop = 0;
#pragma omp parallel num_threads(threads) reduction(| : bad)
    {
        double f;
        bad |= fn(1000, 1, &f);
    }
    if (bad) {
        *err = "the check loop's accumulators were wrong";
        return -1;
    }
    long iters = 1 << 16;
    double best = 0;
    for (int round = 0; round < 40; round++) {
        double t0 = now_s();
#pragma omp parallel num_threads(threads) reduction(+ : flop)
        {
            double f;
            fn(iters, 0, &f);
            flop += f;
        }
        double dt = now_s() - t0;
        double gflops = flop / dt * 1e-9;
        flop = 0;
        if (dt * 1e3 < ms / 4) {
            iters *= 4;
            continue;
        }
        if (gflops > best) best = gflops;
        if (dt * 1e3 >= ms) break;
        iters *= 2;
    }
    return best;
}

static void print_probe(const char *name, int have, probe_fn fn, int threads, double ms, const char *why_not, int last) {
    if (!have) {
        printf("\"%s_gflops\":null,\"%s_note\":\"%s\"%s", name, name, why_not, last ? "" : ",");
        return;
    }
    const char *err = NULL;
    double g = measure(fn, threads, ms, &err);
    if (g < 0)
        printf("\"%s_gflops\":null,\"%s_note\":\"%s\"%s", name, name, err, last ? "" : ",");
    else
        printf("\"%s_gflops\":%.1f%s", name, g, last ? "" : ",");
}

static void cpu_model(char *out, size_t n) {
    snprintf(out, n, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') c++;
                c[strcspn(c, "\n\"\\")] = 0;
                snprintf(out, n, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

int main(int argc, char **argv) {
    int threads = omp_get_max_threads();
    double ms = 300;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ms") && i + 1 < argc) ms = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: fp8_bench_cpu_peak [--threads T] [--ms MS]\n");
            return 2;
        }
    }
    if (threads < 1 || ms <= 0) {
        fprintf(stderr, "fp8_bench_cpu_peak: --threads and --ms must be positive\n");
        return 2;
    }
    char model[256];
    cpu_model(model, sizeof model);
    printf("{\"cpu\":\"%s\",\"threads\":%d,", model, threads);
#if defined(__x86_64__)
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f");
    int hasbf16 = has512 && __builtin_cpu_supports("avx512bf16");
    int hasavx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int hasamx = __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("amx-tile");
    const char *amx_why = "this CPU has no AMX-BF16";
    if (hasamx && !amx_permitted()) {
        hasamx = 0;
        amx_why = "the kernel refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)";
    }
    print_probe("avx512_bf16", hasbf16, probe_avx512_bf16, threads, ms, "this CPU has no AVX512-BF16", 0);
    print_probe("amx_bf16", hasamx, probe_amx_bf16, threads, ms, amx_why, 0);
    if (has512) print_probe("f32_fma", 1, probe_f32_fma512, threads, ms, "", 1);
    else print_probe("f32_fma", hasavx2, probe_f32_fma256, threads, ms, "this CPU has no AVX2+FMA", 1);
#else
    printf("\"avx512_bf16_gflops\":null,\"avx512_bf16_note\":\"not x86-64\",\"amx_bf16_gflops\":null,"
           "\"amx_bf16_note\":\"not x86-64\",\"f32_fma_gflops\":null,\"f32_fma_note\":\"not x86-64\"");
#endif
    printf("}\n");
    return 0;
}
