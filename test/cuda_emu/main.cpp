/*
 * fp8_cuda_emu_test — runs the kernels of libfp8_cuda (the .cu files of libfp8/src/cuda),
 * built for the CPU as libfp8_cuda_emu, through their real fp8_cuda_* entry
 * points and compares every result with libfp8's CPU functions: bit for bit
 * where the CUDA sources promise it (casts, amax and scales, row-wise
 * quantize, delayed scaling, data movement, binary ops, optimizers), within
 * f32 / bf16 rounding elsewhere (transcendental eltwise, softmax, norms,
 * GEMMs), plus argument errors and the launch paths each shape takes.
 *
 *   cmake --build build --target fp8_cuda_emu_test
 *   build/fp8_cuda_emu_test [group ...]     groups: context cast eltwise tensor nn optim gemm block faults
 *
 * With no group named, everything runs and the run also fails when a launch
 * site (a <<<...>>> in libfp8/src/cuda) never ran, except those listed in
 * kUnreachable below. Exit status 0 when everything matched. Run by
 * test/cuda_emu.test.ts.
 */
#include <dirent.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "harness.h"

using namespace harness;

namespace {

struct Group {
    const char *name;
    void (*run)();
};
const Group kGroups[] = {
    {"context", test_context}, {"cast", test_cast}, {"eltwise", test_eltwise}, {"tensor", test_tensor},
    {"nn", test_nn},           {"optim", test_optim}, {"gemm", test_gemm},     {"block", test_block},
    {"faults", test_faults},
};

/* Launch sites no test can reach in reasonable time: 64-bit indexing needs
 * 2^31 elements (the copy's 64-bit path is reached through large strides). */
const char *const kUnreachable[][2] = {
    {"tensor_kernels.cu", "binary_kernel<int64_t>"},
    {"tensor_kernels.cu", "masked_fill_kernel<int64_t>"},
};

void on_crash(int sig) {
    fprintf(stdout, "\nCRASH (signal %d) in test [%s]: a kernel read or wrote outside its buffers, or the "
                    "emulator failed\n", sig, current_test);
    fflush(stdout);
    signal(sig, SIG_DFL);
    raise(sig);
}

struct SourceSite {
    std::string file, kernel;
    int line;
};

/* Every <<< in the .cu files of the CUDA source folder. */
std::vector<SourceSite> source_sites(const std::string &dir) {
    std::vector<SourceSite> out;
    DIR *d = opendir(dir.c_str());
    if (!d) return out;
    std::vector<std::string> names;
    while (dirent *e = readdir(d)) {
        const std::string n = e->d_name;
        if (n.size() > 3 && n.compare(n.size() - 3, 3, ".cu") == 0) names.push_back(n);
    }
    closedir(d);
    for (const auto &n : names) {
        std::ifstream in(dir + "/" + n);
        std::string text;
        int line = 0;
        while (std::getline(in, text)) {
            line++;
            const size_t at = text.find("<<<");
            if (at == std::string::npos) continue;
            size_t b = at;
            while (b > 0 && text[b - 1] != ' ' && text[b - 1] != '(') b--;
            out.push_back({n, text.substr(b, at - b), line});
        }
    }
    return out;
}

std::string base_name(const std::string &p) {
    const size_t s = p.rfind('/');
    return s == std::string::npos ? p : p.substr(s + 1);
}

/* Fails for each launch site in the sources that no test ran. */
void check_site_coverage() {
    current_test = "launch-site coverage";
    std::set<std::pair<std::string, int>> ran;
    const char *file, *kernel;
    int32_t line;
    int64_t launches, total = 0;
    for (int64_t i = 0; fp8_cuda_emu_site(i, &file, &line, &kernel, &launches) == FP8_OK; i++) {
        ran.insert({base_name(file), line});
        total += launches;
    }
    const auto sites = source_sites(FP8_CUDA_SOURCE_DIR);
    CHECK(!sites.empty(), "found no launch sites in %s", FP8_CUDA_SOURCE_DIR);
    int covered = 0, excused = 0;
    for (const auto &s : sites) {
        if (ran.count({s.file, s.line})) {
            covered++;
            continue;
        }
        bool unreachable = false;
        for (const auto &u : kUnreachable) unreachable |= s.file == u[0] && s.kernel == u[1];
        if (unreachable) {
            excused++;
            continue;
        }
        CHECK(false, "launch site %s:%d (%s) never ran: add a shape that takes it", s.file.c_str(), s.line,
              s.kernel.c_str());
    }
    printf("launch sites: %d of %zu ran (%d need 2^31 elements and are skipped), %lld grids in all\n", covered,
           sites.size(), excused, (long long)total);
}

}  // namespace

int main(int argc, char **argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGABRT, on_crash);
    std::set<std::string> only;
    for (int i = 1; i < argc; i++) {
        bool known = false;
        for (const auto &g : kGroups) known |= argv[i] == std::string(g.name);
        if (!known) {
            fprintf(stderr, "usage: %s [group ...]; groups:", argv[0]);
            for (const auto &g : kGroups) fprintf(stderr, " %s", g.name);
            fprintf(stderr, "\n");
            return 2;
        }
        only.insert(argv[i]);
    }

    if (fp8_cuda_emu_configure(1, 4, 9) != FP8_OK || fp8_cuda_ctx_create(0, &ctx) != FP8_OK) {
        printf("FAIL: no context on the emulated device: %s\n", fp8_cuda_last_error());
        return 1;
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto &g : kGroups) {
        if (!only.empty() && !only.count(g.name)) continue;
        section(g.name);
        rng.seed(std::hash<std::string>()(g.name)); /* a group's inputs do not depend on which groups ran before */
        const int before = failures, checks_before = checks;
        const auto t = std::chrono::steady_clock::now();
        g.run();
        section(g.name); /* reports a slow last part before the group's summary */
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
        printf("== %-8s %s: %d checks, %d failures, %.1f s\n", g.name, failures == before ? "ok" : "FAILED",
               checks - checks_before, failures - before, s);
    }
    section("");
    if (only.empty()) check_site_coverage();
    CUDA_OK(fp8_cuda_ctx_destroy(ctx));
    int64_t live_bytes, live_allocs;
    fp8_cuda_emu_memory(&live_bytes, &live_allocs);
    CHECK(live_allocs == 0, "%lld device allocations (%lld bytes) outlive the context", (long long)live_allocs,
          (long long)live_bytes);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("%s: %d checks, %d failures, %.1f s\n", failures ? "FAILED" : "OK", checks, failures, s);
    return failures ? 1 : 0;
}
