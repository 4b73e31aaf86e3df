/*
 * onednn_matmul_layouts.cpp — oneDNN's own matmul for one problem (M,K,N) in
 * each of the four plain operand layouts, to find the layout oneDNN's fastest
 * kernel takes on this CPU (bench/gemm_layouts.ts, docs/architecture.md):
 *     layout 0 "ab,ab": a stored (M,K),  b stored (K,N)
 *     layout 1 "ab,ba": a stored (M,K),  b stored (N,K)   (x @ w^T, a Linear's forward)
 *     layout 2 "ba,ab": a stored (K,M),  b stored (K,N)   (g^T @ x, a Linear's grad_weight)
 *     layout 3 "ba,ba": a stored (K,M),  b stored (N,K)
 * c is (M,N) row-major; a, b, c share one dtype; no post-ops. Each primitive
 * is created once and executed repeatedly, with nothing of libfp8 in between.
 *
 * Build: part of the default CMake build (target fp8_bench_onednn_layouts).
 * Usage: fp8_bench_onednn_layouts M K N [f32|bf16] [--reps R] [--serve]
 * Without --serve: one JSON line per layout (best and median of R runs, the kernel).
 * --serve: one JSON line listing each layout's kernel once ready, then for
 * each "run L" line on stdin execute layout L once and print the
 * milliseconds; stop at "quit" or EOF (a caller interleaves these calls with
 * its own, so that both see the same machine load).
 * Compiles against oneDNN 2.x (op descriptors) and 3.x (no op descriptors).
 */
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "bench_fill.hpp"

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

static const char *const kLayoutNames[4] = {"ab,ab", "ab,ba", "ba,ab", "ba,ba"};

static int usage() {
    std::fprintf(stderr, "usage: fp8_bench_onednn_layouts M K N [f32|bf16] [--reps R] [--serve]\n");
    return 2;
}

using fp8bench::fill;

static dnnl::matmul::primitive_desc make_pd(const dnnl::engine &eng, const dnnl::memory::desc &a,
                                            const dnnl::memory::desc &b,
                                            const dnnl::memory::desc &c) {
#if DNNL_VERSION_MAJOR >= 3
    return dnnl::matmul::primitive_desc(eng, a, b, c);
#else
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), eng);
#endif
}

int main(int argc, char **argv) {
    if (argc < 4) return usage();
    const int64_t M = std::atoll(argv[1]), K = std::atoll(argv[2]), N = std::atoll(argv[3]);
    if (M <= 0 || K <= 0 || N <= 0) return usage();
    dt d = dt::bf16;
    int reps = 10;
    bool serve = false;
    for (int i = 4; i < argc; ++i) {
        if (!std::strcmp(argv[i], "f32"))
            d = dt::f32;
        else if (!std::strcmp(argv[i], "bf16"))
            d = dt::bf16;
        else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = std::max(1, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--serve"))
            serve = true;
        else
            return usage();
    }
    const char *dname = d == dt::f32 ? "f32" : "bf16";

    try {
        dnnl::engine eng(dnnl::engine::kind::cpu, 0);
        dnnl::stream s(eng);
        std::vector<uint32_t> a = fill(M * K, d, 1), b = fill(K * N, d, 2);
        std::vector<uint32_t> c((size_t)(d == dt::f32 ? M * N : (M * N + 1) / 2));
        const dnnl::memory::desc c_md({M, N}, d, dims{N, 1});
        std::vector<dnnl::matmul> prims;
        std::vector<std::string> impls;
        std::vector<dnnl::memory> am, bm;
        for (int l = 0; l < 4; ++l) {
            const bool ta = l >= 2, tb = l % 2 == 1;
            const dnnl::memory::desc a_md({M, K}, d, ta ? dims{1, M} : dims{K, 1});
            const dnnl::memory::desc b_md({K, N}, d, tb ? dims{1, K} : dims{N, 1});
            auto pd = make_pd(eng, a_md, b_md, c_md);
            prims.emplace_back(pd);
            impls.emplace_back(pd.impl_info_str());
            am.emplace_back(a_md, eng, a.data());
            bm.emplace_back(b_md, eng, b.data());
        }
        dnnl::memory cm(c_md, eng, c.data());
        auto timed_ms = [&](int l) {
            const auto t0 = std::chrono::steady_clock::now();
            prims[(size_t)l].execute(s, {{DNNL_ARG_SRC, am[(size_t)l]},
                                         {DNNL_ARG_WEIGHTS, bm[(size_t)l]},
                                         {DNNL_ARG_DST, cm}});
            s.wait();
            const auto t1 = std::chrono::steady_clock::now();
            return std::chrono::duration<double, std::milli>(t1 - t0).count();
        };
        for (int l = 0; l < 4; ++l) timed_ms(l), timed_ms(l); /* warm-up: first touch, JIT */
        if (serve) {
            std::printf("{\"M\":%lld,\"K\":%lld,\"N\":%lld,\"dtype\":\"%s\",\"impl\":[", (long long)M,
                        (long long)K, (long long)N, dname);
            for (int l = 0; l < 4; ++l)
                std::printf("%s{\"layout\":\"%s\",\"impl\":\"%s\"}", l ? "," : "", kLayoutNames[l],
                            impls[(size_t)l].c_str());
            std::printf("]}\n");
            std::fflush(stdout);
            char line[64];
            while (std::fgets(line, sizeof line, stdin) && std::strncmp(line, "quit", 4)) {
                int l = -1;
                if (std::sscanf(line, "run %d", &l) != 1 || l < 0 || l > 3) {
                    std::printf("error: expected 'run 0..3' or 'quit'\n");
                } else {
                    std::printf("%.4f\n", timed_ms(l));
                }
                std::fflush(stdout);
            }
            return 0;
        }
        const double gflop = 2.0 * (double)M * (double)K * (double)N * 1e-9;
        for (int l = 0; l < 4; ++l) {
            std::vector<double> ms;
            for (int r = 0; r < reps; ++r) ms.push_back(timed_ms(l));
            std::sort(ms.begin(), ms.end());
            std::printf("{\"M\":%lld,\"K\":%lld,\"N\":%lld,\"dtype\":\"%s\",\"layout\":\"%s\","
                        "\"reps\":%d,\"best_ms\":%.4f,\"median_ms\":%.4f,\"gflops\":%.2f,"
                        "\"impl\":\"%s\"}\n",
                        (long long)M, (long long)K, (long long)N, dname, kLayoutNames[l], reps,
                        ms.front(), ms[ms.size() / 2], gflop / (ms.front() * 1e-3),
                        impls[(size_t)l].c_str());
        }
    } catch (dnnl::error &e) {
        std::fprintf(stderr, "fp8_bench_onednn_layouts: oneDNN: %s\n", e.what());
        return 1;
    }
    return 0;
}
