/*
 * harness.h — shared by the fp8_cuda_emu_test sources: the emulated context,
 * guarded buffers, random inputs and the comparisons against libfp8's CPU
 * functions (the oracle). See main.cpp for what runs and how.
 *
 * Buffers end right before an inaccessible page, so a kernel that reads or
 * writes past the end of its data crashes the harness instead of passing; the
 * bytes between the end of the data and the page (at most 15, from alignment)
 * hold a canary that every comparison checks.
 */
#ifndef FP8_CUDA_EMU_HARNESS_H
#define FP8_CUDA_EMU_HARNESS_H

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_common.cuh" /* fp8cuda::Ctx: tests reach into the context (sm_count, workspace) */
#include "fp8.h"
#include "fp8_cuda_emu.h"
#include "internal.h"

namespace harness {

/* ---- results ------------------------------------------------------------------ */

extern int failures;
extern int checks;
extern const char *current_test;
/* Starts the named part of a group (failure messages carry its name); prints
 * the time of the part before it when that took over a second. */
void section(const char *name);

void fail_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        ::harness::checks++;                                                  \
        if (!(cond)) ::harness::fail_at(__FILE__, __LINE__, __VA_ARGS__);     \
    } while (0)

/* A call that must succeed; on failure the message names fp8_cuda_last_error(). */
#define CUDA_OK(call)                                                                                  \
    do {                                                                                               \
        ::harness::checks++;                                                                           \
        const int32_t st_ = (call);                                                                    \
        if (st_ != FP8_OK)                                                                             \
            ::harness::fail_at(__FILE__, __LINE__, "%s returned %d: %s", #call, st_, fp8_cuda_last_error()); \
    } while (0)
#define CPU_OK(call)                                                                                  \
    do {                                                                                              \
        const int32_t st_ = (call);                                                                   \
        if (st_ != FP8_OK)                                                                            \
            ::harness::fail_at(__FILE__, __LINE__, "%s returned %d: %s", #call, st_, fp8_last_error()); \
    } while (0)
/* A call that must fail with `status` and a message containing `needle`. */
#define CUDA_FAILS(status, needle, call) ::harness::expect_failure(__FILE__, __LINE__, #call, (call), status, needle)
void expect_failure(const char *file, int line, const char *what, int32_t got, int32_t status, const char *needle);

/* ---- the emulated device ------------------------------------------------------------- */

extern fp8_cuda_ctx_t ctx;
inline fp8cuda::Ctx *ctx_internals(fp8_cuda_ctx_t c = ctx) { return reinterpret_cast<fp8cuda::Ctx *>(c); }

/* Runs body with the context's sm_count (and so every grid size and path choice)
 * and workspace size changed, restoring both afterwards. */
template <class F>
void with_device_shape(int sm_count, size_t workspace_bytes, F &&body) {
    fp8cuda::Ctx *c = ctx_internals();
    const int sm = c->sm_count;
    const size_t ws = c->workspace_bytes;
    c->sm_count = sm_count;
    c->workspace_bytes = workspace_bytes < ws ? workspace_bytes : ws;
    body();
    c->sm_count = sm;
    c->workspace_bytes = ws;
}

/* ---- buffers ----------------------------------------------------------------------- */

/* n elements of dtype (or raw bytes: elem 1), ending just before a guard page.
 * `misalign` shifts the start by that many bytes off 16-byte alignment (to
 * take a kernel's unaligned path). */
class Buf {
   public:
    Buf() = default;
    Buf(int32_t dtype, int64_t n, int misalign = 0);
    static Buf bytes(int64_t nbytes, int misalign = 0);
    Buf(Buf &&o) noexcept;
    Buf &operator=(Buf &&o) noexcept;
    Buf(const Buf &) = delete;
    Buf &operator=(const Buf &) = delete;
    ~Buf();

    void *p() const { return data_; }
    template <class T>
    T *as() const {
        return (T *)data_;
    }
    int64_t n() const { return n_; }
    int32_t dtype() const { return dtype_; }
    size_t nbytes() const { return nbytes_; }
    float get(int64_t i) const { return fp8_load_hp(data_, dtype_, i); }
    void set(int64_t i, float v) { fp8_store_hp(data_, dtype_, i, v); }
    void fill_bytes(uint8_t b) { memset(data_, b, nbytes_); }
    void copy_from(const Buf &o) { memcpy(data_, o.data_, nbytes_ < o.nbytes_ ? nbytes_ : o.nbytes_); }
    /* true when nothing wrote past the end of the data */
    bool canary_ok() const;

   private:
    void *map_ = nullptr;
    size_t map_bytes_ = 0;
    void *data_ = nullptr;
    size_t nbytes_ = 0;
    int64_t n_ = 0;
    int32_t dtype_ = -1;
};

/* ---- random inputs ----------------------------------------------------------------- */

extern std::mt19937_64 rng;
float randn();
float uniform(float lo, float hi);
/* Fills buf (F32/BF16) with normal values times `scale`, and the first
 * `specials` slots with NaN, +-inf, +-0, subnormals, huge and tiny values. */
void fill_random(Buf &b, float scale = 1.0f, bool specials = false);
/* The special values fill_random uses, for tests that place them themselves. */
const std::vector<float> &special_values();
int64_t prod(const std::vector<int64_t> &d);
std::vector<int64_t> rand_dims(int ndim, int max_dim);
std::string dims_str(const std::vector<int64_t> &d);

/* ---- comparisons ------------------------------------------------------------------- */

/* Byte for byte; prints the first few differences as elements of dtype. */
bool same_bytes(const char *what, const Buf &got, const Buf &ref, size_t nbytes = (size_t)-1);
bool same_bytes(const char *what, const void *got, const void *ref, size_t nbytes, int32_t dtype);
/* Bit for bit, except that any NaN matches any NaN: for ops whose NaN
 * payload comes from the hardware (x86 keeps an operand's, a GPU gives its
 * canonical NaN; the emulator, running on the host, cannot tell). */
bool same_values(const char *what, const Buf &got, const Buf &ref);
/* Element by element within atol + rtol * |ref| (NaN matches NaN, inf matches
 * the same inf); returns the largest relative error through max_rel. */
bool close(const char *what, const Buf &got, const Buf &ref, double rtol, double atol, double *max_rel = nullptr);
bool close_values(const char *what, const float *got, const float *ref, int64_t n, double rtol, double atol,
                  double *max_rel = nullptr);

/* Tolerances of a result rounded once to dtype from an f32 value that the
 * CPU and the device compute with a few ulps of difference. */
inline double rtol_for(int32_t dt) { return dt == FP8_DTYPE_F32 ? 2e-5 : 8e-3; }
inline double atol_for(int32_t dt) { return dt == FP8_DTYPE_F32 ? 1e-6 : 1e-5; }
/* (fp8_dtype_size / fp8_dtype_name are internal to the libraries) */
inline int32_t dtype_size(int32_t dt) {
    return dt == FP8_DTYPE_F32 || dt == FP8_DTYPE_I32 ? 4 : dt == FP8_DTYPE_BF16 ? 2 : 1;
}
inline const char *dt_name(int32_t dt) {
    switch (dt) {
    case FP8_DTYPE_F32: return "float32";
    case FP8_DTYPE_BF16: return "bfloat16";
    case FP8_DTYPE_E4M3FN: return "float8_e4m3fn";
    case FP8_DTYPE_E5M2: return "float8_e5m2";
    case FP8_DTYPE_I32: return "int32";
    default: return "uint8";
    }
}

/* Device memory (cudaMalloc'd by the emulator) is back where it was: no
 * temporary leaked. */
class MemoryWatch {
   public:
    MemoryWatch();
    void check(const char *what) const;

   private:
    int64_t bytes_, allocs_;
};

/* ---- the test groups (one file each) ----------------------------------------------------- */

void test_context();
void test_cast();
void test_eltwise();
void test_tensor();
void test_nn();
void test_optim();
void test_gemm();
void test_block();
void test_faults();

}  // namespace harness

#endif
