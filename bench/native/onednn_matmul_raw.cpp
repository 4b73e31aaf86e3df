/*
 * onednn_matmul_raw.cpp — the baseline for bench/matmul_overhead.ts: oneDNN's
 * own matmul, primitive created once and executed repeatedly, with nothing of
 * libfp8 in between. Same problem as fp8_cpu_matmul gets: row-major (plain)
 * a (M,K), b (K,N) or (N,K) stored with --trans-b, c (M,N), no post-ops.
 *
 * Build: part of the default CMake build (target fp8_bench_onednn_raw).
 * Usage: fp8_bench_onednn_raw M K N f32|bf16 [--reps R] [--trans-b] [--c-dtype f32|bf16] [--serve]
 * Prints one JSON line: best-of-R time and GFLOP/s, the median, the kernel
 * and the oneDNN version. Builds against oneDNN 2.x and 3.x.
 * --serve: print the JSON line (no timings) once ready, then for each "run"
 * line on stdin execute once and print the milliseconds; stop at "quit" or
 * EOF. This lets a caller alternate single runs with its own, so that both
 * see the same machine load.
 */
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_version.h>

#include "bench_fill.hpp"

using dt = dnnl::memory::data_type;

static int usage() {
    std::fprintf(stderr,
                 "usage: fp8_bench_onednn_raw M K N f32|bf16 [--reps R] [--trans-b] "
                 "[--c-dtype f32|bf16] [--serve]\n");
    return 2;
}

static bool parse_dt(const char *s, dt *out) {
    if (std::strcmp(s, "f32") && std::strcmp(s, "bf16")) return false;
    *out = std::strcmp(s, "f32") ? dt::bf16 : dt::f32;
    return true;
}

using fp8bench::fill;

int main(int argc, char **argv) {
    if (argc < 5) return usage();
    const int64_t M = std::atoll(argv[1]), K = std::atoll(argv[2]), N = std::atoll(argv[3]);
    dt ab, c_dt;
    if (M <= 0 || K <= 0 || N <= 0 || !parse_dt(argv[4], &ab)) return usage();
    c_dt = ab;
    int reps = 10;
    bool trans_b = false, serve = false;
    for (int i = 5; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = std::max(1, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--trans-b"))
            trans_b = true;
        else if (!std::strcmp(argv[i], "--serve"))
            serve = true;
        else if (!std::strcmp(argv[i], "--c-dtype") && i + 1 < argc && parse_dt(argv[i + 1], &c_dt))
            ++i;
        else
            return usage();
    }

    try {
        dnnl::engine eng(dnnl::engine::kind::cpu, 0);
        dnnl::stream s(eng);
        using dims = dnnl::memory::dims;
        const dnnl::memory::desc a_md({M, K}, ab, dims{K, 1});
        const dnnl::memory::desc b_md({K, N}, ab, trans_b ? dims{1, K} : dims{N, 1});
        const dnnl::memory::desc c_md({M, N}, c_dt, dims{N, 1});
#if DNNL_VERSION_MAJOR >= 3
        dnnl::matmul::primitive_desc pd(eng, a_md, b_md, c_md);
#else
        dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), eng);
#endif
        dnnl::matmul prim(pd);
        const dnnl_version_t *v = dnnl_version();
        const std::string version = std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                                    std::to_string(v->patch);

        std::vector<uint32_t> a = fill(M * K, ab, 1), b = fill(K * N, ab, 2);
        std::vector<uint32_t> c((size_t)(c_dt == dt::f32 ? M * N : (M * N + 1) / 2));
        dnnl::memory am(a_md, eng, a.data()), bm(b_md, eng, b.data()), cm(c_md, eng, c.data());
        auto run = [&] {
            prim.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
            s.wait();
        };
        auto timed_ms = [&] {
            const auto t0 = std::chrono::steady_clock::now();
            run();
            const auto t1 = std::chrono::steady_clock::now();
            return std::chrono::duration<double, std::milli>(t1 - t0).count();
        };
        run(); /* warm-up: first touch, JIT caches */
        run();
        const double gflop = 2.0 * (double)M * (double)K * (double)N * 1e-9;
        if (serve) {
            std::printf("{\"M\":%lld,\"K\":%lld,\"N\":%lld,\"dtype\":\"%s\",\"impl\":\"%s\",\"onednn\":\"%s\"}\n",
                        (long long)M, (long long)K, (long long)N, argv[4], pd.impl_info_str(),
                        version.c_str());
            std::fflush(stdout);
            char line[64];
            while (std::fgets(line, sizeof line, stdin) && std::strncmp(line, "quit", 4)) {
                std::printf("%.4f\n", timed_ms());
                std::fflush(stdout);
            }
            return 0;
        }
        std::vector<double> ms;
        for (int r = 0; r < reps; ++r) ms.push_back(timed_ms());
        std::sort(ms.begin(), ms.end());
        const double best = ms.front(), median = ms[ms.size() / 2];
        std::printf(
            "{\"M\":%lld,\"K\":%lld,\"N\":%lld,\"dtype\":\"%s\",\"c_dtype\":\"%s\",\"trans_b\":%s,"
            "\"reps\":%d,\"best_ms\":%.4f,\"median_ms\":%.4f,\"gflops\":%.2f,\"impl\":\"%s\",\"onednn\":\"%s\"}\n",
            (long long)M, (long long)K, (long long)N, argv[4], c_dt == dt::f32 ? "f32" : "bf16",
            trans_b ? "true" : "false", reps, best, median, gflop / (best * 1e-3),
            pd.impl_info_str(), version.c_str());
    } catch (dnnl::error &e) {
        std::fprintf(stderr, "fp8_bench_onednn_raw: oneDNN: %s\n", e.what());
        return 1;
    }
    return 0;
}
