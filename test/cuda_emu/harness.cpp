/*
 * harness.cpp — the helpers declared in harness.h.
 */
#include "harness.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>

namespace harness {

int failures = 0;
int checks = 0;
const char *current_test = "";
fp8_cuda_ctx_t ctx = nullptr;
std::mt19937_64 rng(20241001);

void section(const char *name) {
    static auto started = std::chrono::steady_clock::now();
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - started).count();
    if (s > 1.0 && *current_test) printf("   (%s took %.1f s)\n", current_test, s);
    started = now;
    current_test = name;
}

void fail_at(const char *file, int line, const char *fmt, ...) {
    failures++;
    const char *base = strrchr(file, '/');
    printf("FAIL [%s] %s:%d: ", current_test, base ? base + 1 : file, line);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

void expect_failure(const char *file, int line, const char *what, int32_t got, int32_t status, const char *needle) {
    checks++;
    const char *msg = fp8_cuda_last_error();
    if (got != status) {
        fail_at(file, line, "%s returned %d, expected %d (message: %s)", what, got, status, msg);
    } else if (needle && !strstr(msg, needle)) {
        fail_at(file, line, "%s: message \"%s\" does not mention \"%s\"", what, msg, needle);
    }
}

/* ---- Buf ------------------------------------------------------------------------- */

namespace {
constexpr uint8_t kCanary = 0x5b;
size_t page_size() { return (size_t)sysconf(_SC_PAGESIZE); }
}  // namespace

Buf::Buf(int32_t dtype, int64_t n, int misalign) : n_(n), dtype_(dtype) {
    const int32_t es = dtype < 0 ? 1 : dtype_size(dtype);
    nbytes_ = (size_t)(n > 0 ? n : 0) * (size_t)es;
    const size_t page = page_size();
    const size_t body = (nbytes_ + 16 + (size_t)misalign + page - 1) / page * page;
    map_bytes_ = body + page;
    map_ = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map_ == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    char *guard = (char *)map_ + body;
    mprotect(guard, page, PROT_NONE);
    /* as close to the guard as 16-byte alignment (plus misalign) allows */
    uintptr_t start = ((uintptr_t)guard - nbytes_) & ~(uintptr_t)15;
    if (misalign) start -= 16 - (uintptr_t)misalign;
    data_ = (void *)start;
    memset((char *)data_ + nbytes_, kCanary, (size_t)(guard - ((char *)data_ + nbytes_)));
}

Buf Buf::bytes(int64_t nbytes, int misalign) { return Buf(-1, nbytes, misalign); }

Buf::Buf(Buf &&o) noexcept { *this = std::move(o); }
Buf &Buf::operator=(Buf &&o) noexcept {
    if (this != &o) {
        if (map_) munmap(map_, map_bytes_);
        map_ = o.map_, map_bytes_ = o.map_bytes_, data_ = o.data_, nbytes_ = o.nbytes_, n_ = o.n_, dtype_ = o.dtype_;
        o.map_ = nullptr;
        o.data_ = nullptr;
    }
    return *this;
}
Buf::~Buf() {
    if (map_) munmap(map_, map_bytes_);
}

bool Buf::canary_ok() const {
    const char *guard = (const char *)map_ + map_bytes_ - page_size();
    for (const char *q = (const char *)data_ + nbytes_; q < guard; q++)
        if ((uint8_t)*q != kCanary) return false;
    return true;
}

/* ---- random inputs ------------------------------------------------------------------ */

float randn() {
    static std::normal_distribution<float> d(0.0f, 1.0f);
    return d(rng);
}
float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

const std::vector<float> &special_values() {
    static const std::vector<float> v = {
        NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1.0f, -1.0f, 448.0f, -448.0f, 464.0f, 57344.0f, 61440.0f,
        1e-30f, -1e-30f, 1e-40f /* subnormal */, -1e-44f, 3.4e38f, -3.4e38f, 0.0009765625f /* 2^-10 */,
        0.001953125f /* e4m3 min subnormal 2^-9 */, 0.0029296875f /* 1.5 * 2^-9: a tie */, 1.0625f /* e4m3 tie */,
        1.1875f, 0.5f, 65504.0f, 1e-8f, -5e-7f};
    return v;
}

void fill_random(Buf &b, float scale, bool specials) {
    const auto &sv = special_values();
    for (int64_t i = 0; i < b.n(); i++) {
        float v = randn() * scale;
        if (specials && i < (int64_t)sv.size()) v = sv[(size_t)i];
        b.set(i, v);
    }
    if (specials && b.n() > (int64_t)sv.size() * 2) /* a few more, further in */
        for (int k = 0; k < 8; k++) b.set((int64_t)(rng() % (uint64_t)b.n()), sv[rng() % sv.size()]);
}

int64_t prod(const std::vector<int64_t> &d) {
    int64_t p = 1;
    for (auto x : d) p *= x;
    return p;
}
std::vector<int64_t> rand_dims(int ndim, int max_dim) {
    std::vector<int64_t> d((size_t)ndim);
    for (auto &x : d) x = 1 + (int64_t)(rng() % (uint64_t)max_dim);
    return d;
}
std::string dims_str(const std::vector<int64_t> &d) {
    std::string s = "(";
    for (size_t i = 0; i < d.size(); i++) s += (i ? "," : "") + std::to_string(d[i]);
    return s + ")";
}

/* ---- comparisons ------------------------------------------------------------------- */

namespace {
double elem(const void *p, int32_t dt, int64_t i) {
    switch (dt) {
    case FP8_DTYPE_F32:
    case FP8_DTYPE_BF16: return fp8_load_hp(p, dt, i);
    case FP8_DTYPE_I32: return ((const int32_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}
uint32_t elem_bits(const void *p, int32_t dt, int64_t i) {
    switch (dt) {
    case FP8_DTYPE_F32:
    case FP8_DTYPE_I32: return ((const uint32_t *)p)[i];
    case FP8_DTYPE_BF16: return ((const uint16_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}
}  // namespace

bool same_bytes(const char *what, const void *got, const void *ref, size_t nbytes, int32_t dtype) {
    checks++;
    if (memcmp(got, ref, nbytes) == 0) return true;
    const int32_t es = dtype < 0 ? 1 : dtype_size(dtype);
    const int64_t n = (int64_t)(nbytes / (size_t)es);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (memcmp((const char *)got + i * es, (const char *)ref + i * es, (size_t)es) != 0) {
            if (bad < 4)
                printf("    %s [%lld]: device %.9g (0x%x), cpu %.9g (0x%x)\n", what, (long long)i, elem(got, dtype, i),
                       elem_bits(got, dtype, i), elem(ref, dtype, i), elem_bits(ref, dtype, i));
            bad++;
        }
    fail_at(__FILE__, __LINE__, "%s: %lld of %lld elements differ from the CPU", what, (long long)bad, (long long)n);
    return false;
}

bool same_bytes(const char *what, const Buf &got, const Buf &ref, size_t nbytes) {
    if (!got.canary_ok()) {
        fail_at(__FILE__, __LINE__, "%s: the device wrote past the end of its output", what);
        return false;
    }
    if (nbytes == (size_t)-1) nbytes = got.nbytes();
    return same_bytes(what, got.p(), ref.p(), nbytes, got.dtype());
}

bool same_values(const char *what, const Buf &got, const Buf &ref) {
    if (!got.canary_ok()) {
        fail_at(__FILE__, __LINE__, "%s: the device wrote past the end of its output", what);
        return false;
    }
    checks++;
    const int32_t dt = got.dtype(), es = dtype_size(dt);
    int64_t bad = 0;
    for (int64_t i = 0; i < got.n(); i++) {
        if (std::isnan(got.get(i)) && std::isnan(ref.get(i))) continue;
        if (memcmp((const char *)got.p() + i * es, (const char *)ref.p() + i * es, (size_t)es) == 0) continue;
        if (bad < 4)
            printf("    %s [%lld]: device %.9g (0x%x), cpu %.9g (0x%x)\n", what, (long long)i, elem(got.p(), dt, i),
                   elem_bits(got.p(), dt, i), elem(ref.p(), dt, i), elem_bits(ref.p(), dt, i));
        bad++;
    }
    if (bad) fail_at(__FILE__, __LINE__, "%s: %lld of %lld elements differ from the CPU", what, (long long)bad, (long long)got.n());
    return bad == 0;
}

bool close_values(const char *what, const float *got, const float *ref, int64_t n, double rtol, double atol,
                  double *max_rel) {
    checks++;
    int64_t bad = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double g = got[i], r = ref[i];
        bool ok;
        if (std::isnan(g) || std::isnan(r))
            ok = std::isnan(g) && std::isnan(r);
        else if (std::isinf(g) || std::isinf(r))
            ok = g == r;
        else {
            const double err = std::fabs(g - r);
            ok = err <= atol + rtol * std::fabs(r);
            if (r != 0.0) worst = std::max(worst, err / std::fabs(r));
        }
        if (!ok) {
            if (bad < 4) printf("    %s [%lld]: device %.9g, cpu %.9g\n", what, (long long)i, g, r);
            bad++;
        }
    }
    if (max_rel) *max_rel = worst;
    if (bad) fail_at(__FILE__, __LINE__, "%s: %lld of %lld elements outside rtol %g atol %g", what, (long long)bad,
                     (long long)n, rtol, atol);
    return bad == 0;
}

bool close(const char *what, const Buf &got, const Buf &ref, double rtol, double atol, double *max_rel) {
    if (!got.canary_ok()) {
        fail_at(__FILE__, __LINE__, "%s: the device wrote past the end of its output", what);
        return false;
    }
    std::vector<float> g((size_t)got.n()), r((size_t)got.n());
    for (int64_t i = 0; i < got.n(); i++) g[(size_t)i] = got.get(i), r[(size_t)i] = ref.get(i);
    return close_values(what, g.data(), r.data(), got.n(), rtol, atol, max_rel);
}

MemoryWatch::MemoryWatch() { fp8_cuda_emu_memory(&bytes_, &allocs_); }
void MemoryWatch::check(const char *what) const {
    int64_t b, a;
    fp8_cuda_emu_memory(&b, &a);
    CHECK(b == bytes_ && a == allocs_, "%s: device memory went from %lld bytes in %lld blocks to %lld in %lld", what,
          (long long)bytes_, (long long)allocs_, (long long)b, (long long)a);
}

}  // namespace harness
